// One search box for places and objects (GET /search): streets, communities, grids, buildings, parcels,
// city components, tickets (operators and admins only: the server leaves them out for others) and BIM
// elements. Typing (debounced) lists the hits grouped by kind; Enter, or a click, flies to a hit (its box,
// padded, at most zoom 18) and outlines it (its feature from /layers/{layer}/items, else its box).
// A dashboard may send {type: "cim:search", q} (the first hit is chosen); the viewer tells it
// {type: "cim:search.chosen", kind, layer, id} (see viewer.js for the messages' origins).
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: the last answer's hits, the hit chosen (with the view flown to), errors
  const found = { results: [], chosen: null, errors: [], query: "", searching: false };
  window.__cimSearch = found;
  if (!api || !api.slot || !api.slot("top-center")) return;

  const TEXT = {
    zh: {
      placeholder: "搜索街道、社区、网格、建筑、宗地、部件、工单",
      label: "搜索",
      clear: "清除",
      searching: "正在搜索…",
      none: "没有找到结果",
      failed: "搜索失败",
      tooLong: "最多 {n} 个字",
      kinds: { street: "街道", community: "社区", grid: "网格", building: "建筑", parcel: "宗地",
               component: "城市部件", ticket: "工单", bim: "BIM 构件" },
    },
    en: {
      placeholder: "Search streets, communities, grids, buildings, parcels, components, tickets",
      label: "Search",
      clear: "Clear",
      searching: "Searching…",
      none: "Nothing found",
      failed: "The search failed",
      tooLong: "At most {n} characters",
      kinds: { street: "Streets", community: "Communities", grid: "Grids", building: "Buildings", parcel: "Parcels",
               component: "Components", ticket: "Tickets", bim: "BIM elements" },
    },
  };
  const MAX_QUERY = 100;  // as the server (layers.search.MAX_QUERY)
  const LIMIT = 30;
  const DEBOUNCE_MS = 250;
  const MAX_ZOOM = 18;
  const MIN_SPAN = 0.0004;  // degrees (~40 m): a point or a small element is shown with its surroundings
  const FLIGHT_MS = 1200;
  const OVERLAY = "search";

  const lang = () => (document.documentElement.lang === "en" ? "en" : "zh");
  const tr = (key) => TEXT[lang()][key];
  const kindName = (kind) => TEXT[lang()].kinds[kind] || kind;
  const esc = api.escapeHtml;

  // --- the box ---------------------------------------------------------------------------------
  const box = document.createElement("div");
  box.className = "cim-search";
  box.setAttribute("role", "search");
  box.innerHTML = `<div class="cim-search-row"><input type="search" class="cim-search-input" autocomplete="off"
      spellcheck="false" maxlength="${MAX_QUERY}" aria-autocomplete="list" aria-controls="cim-search-results">
    <button type="button" class="cim-search-clear" hidden>×</button></div>
    <div class="cim-search-msg" hidden></div><ul id="cim-search-results" class="cim-search-results" role="listbox" hidden></ul>`;
  api.slot("top-center").append(box);
  const input = box.querySelector(".cim-search-input");
  const clear = box.querySelector(".cim-search-clear");
  const msg = box.querySelector(".cim-search-msg");
  const list = box.querySelector(".cim-search-results");

  function texts() {
    input.placeholder = tr("placeholder");
    input.setAttribute("aria-label", tr("label"));
    clear.title = tr("clear");
    clear.setAttribute("aria-label", tr("clear"));
  }

  function say(text) {
    msg.textContent = text || "";
    msg.hidden = !text;
  }

  // --- searching ---------------------------------------------------------------------------------
  let asked = 0;  // the latest search asked for: older answers are dropped
  let active = -1;  // the hit under the keyboard's cursor
  let timer = null;

  async function run(text) {
    const q = text.trim();
    const ticket = ++asked;
    found.query = q;
    clearTimeout(timer);
    if (!q) {
      found.results = [];
      found.searching = false;
      say("");
      draw();
      return [];
    }
    if (q.length > MAX_QUERY) {
      say(tr("tooLong").replace("{n}", MAX_QUERY));
      return [];
    }
    found.searching = true;
    say(tr("searching"));
    try {
      const response = await fetch(`/search?q=${encodeURIComponent(q)}&limit=${LIMIT}`, { credentials: "same-origin" });
      const body = await response.json().catch(() => null);
      if (ticket !== asked) return found.results;
      if (!response.ok) throw new Error((body && body.detail) || `HTTP ${response.status}`);
      found.results = Array.isArray(body) ? body : [];
      found.searching = false;
      say(found.results.length ? "" : tr("none"));
      active = found.results.length ? 0 : -1;
      draw();
      return found.results;
    } catch (err) {
      if (ticket !== asked) return found.results;
      found.searching = false;
      found.results = [];
      found.errors.push(String(err && err.message || err));
      say(`${tr("failed")}: ${err && err.message || err}`);
      draw();
      return [];
    }
  }

  // the hits, grouped by kind (the groups in the order their best hit comes)
  function draw() {
    list.replaceChildren();
    const groups = new Map();
    found.results.forEach((hit, i) => {
      if (!groups.has(hit.kind)) groups.set(hit.kind, []);
      groups.get(hit.kind).push([hit, i]);
    });
    for (const [kind, hits] of groups) {
      const head = document.createElement("li");
      head.className = "cim-search-kind";
      head.dataset.kind = kind;
      head.setAttribute("role", "presentation");
      head.textContent = kindName(kind);
      list.append(head);
      for (const [hit, i] of hits) {
        const li = document.createElement("li");
        li.className = "cim-search-hit" + (i === active ? " active" : "");
        li.setAttribute("role", "option");
        li.dataset.index = i;
        li.dataset.kind = hit.kind;
        li.dataset.id = hit.id;
        li.dataset.layer = hit.layer;
        const detail = [hit.detail, hit.kind === "building" || hit.kind === "bim" ? hit.title : ""].filter(Boolean).join(" · ");
        li.innerHTML = `<span class="label">${esc(hit.label)}</span>` +
          (hit.label !== hit.id ? ` <span class="id">${esc(hit.id)}</span>` : "") +
          (detail ? `<span class="detail">${esc(detail)}</span>` : "");
        li.addEventListener("mousedown", (event) => event.preventDefault());  // the input keeps the focus
        li.addEventListener("click", () => choose(hit));
        list.append(li);
      }
    }
    list.hidden = !found.results.length;
    clear.hidden = !input.value;
  }

  function move(step) {
    if (!found.results.length) return;
    active = (active + step + found.results.length) % found.results.length;
    for (const li of list.querySelectorAll(".cim-search-hit")) {
      li.classList.toggle("active", Number(li.dataset.index) === active);
      if (Number(li.dataset.index) === active) li.scrollIntoView({ block: "nearest" });
    }
  }

  // --- choosing: fly there and outline it ------------------------------------------------------------
  function viewOf(bbox) {
    let [w, s, e, n] = bbox;
    const cx = (w + e) / 2;
    const cy = (s + n) / 2;
    const halfX = Math.max(e - w, MIN_SPAN) / 2;
    const halfY = Math.max(n - s, MIN_SPAN) / 2;
    [w, s, e, n] = [cx - halfX, cy - halfY, cx + halfX, cy + halfY];
    const { width, height } = api.deck;
    const padding = Math.max(8, Math.min(80, Math.floor(Math.min(width, height) / 6)));
    const fitted = new deck.WebMercatorViewport({ width, height }).fitBounds([[w, s], [e, n]], { padding });
    return { longitude: fitted.longitude, latitude: fitted.latitude, zoom: Math.min(fitted.zoom, MAX_ZOOM) };
  }

  function boxFeature(bbox) {
    const [w, s, e, n] = bbox;
    const geometry = w === e && s === n ? { type: "Point", coordinates: [w, s] }
      : { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] };
    return { type: "FeatureCollection", features: [{ type: "Feature", geometry, properties: {} }] };
  }

  async function outline(hit) {
    let data = null;
    try {
      const url = `/layers/${encodeURIComponent(hit.layer)}/items?${encodeURIComponent(hit.key)}=${encodeURIComponent(hit.id)}&limit=5`;
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const collection = await response.json();
        if (collection && Array.isArray(collection.features) && collection.features.length) data = collection;
      }
    } catch (err) {
      found.errors.push(`outline ${hit.layer}/${hit.id}: ${err}`);
    }
    if (found.chosen === null || found.chosen.id !== hit.id || found.chosen.layer !== hit.layer) return;
    found.chosen.outlined = data ? "feature" : "bbox";
    api.setDecoration(OVERLAY, [new deck.GeoJsonLayer({
      id: "search-hit", data: data || boxFeature(hit.bbox), pickable: false, stroked: true, filled: true,
      getFillColor: [255, 196, 0, 70], getLineColor: [255, 196, 0, 255], lineWidthUnits: "pixels", getLineWidth: 3,
      pointType: "circle", pointRadiusUnits: "pixels", getPointRadius: 9, parameters: { depthTest: false },
    })]);
  }

  function choose(hit) {
    if (!hit) return;
    const view = viewOf(hit.bbox);
    found.chosen = { kind: hit.kind, layer: hit.layer, id: hit.id, bbox: hit.bbox, point: hit.point, view, outlined: null };
    api.setView(view, FLIGHT_MS);
    list.hidden = true;
    outline(hit);
    api.notifyParent("cim:search.chosen", { kind: hit.kind, layer: hit.layer, id: hit.id });
  }

  // --- events ------------------------------------------------------------------------------------
  input.addEventListener("input", () => {
    clearTimeout(timer);
    clear.hidden = !input.value;
    timer = setTimeout(() => run(input.value), DEBOUNCE_MS);
  });
  input.addEventListener("keydown", async (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      move(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      const q = input.value.trim();
      const hits = q === found.query && !found.searching ? found.results : await run(input.value);
      choose(hits[active >= 0 && active < hits.length ? active : 0]);
    } else if (event.key === "Escape") {
      list.hidden = true;
    }
  });
  input.addEventListener("focus", () => { list.hidden = !found.results.length; });
  clear.addEventListener("click", () => {
    input.value = "";
    run("");
    api.setDecoration(OVERLAY, []);
    input.focus();
  });
  document.addEventListener("click", (event) => { if (!box.contains(event.target)) list.hidden = true; });

  api.onLanguage.push(() => { texts(); if (found.results.length || found.query) draw(); });
  // the dashboard: {type: "cim:search", q}: the search run, the first hit chosen
  api.onMessage.push(async (m) => {
    if (!m || m.type !== "cim:search" || typeof m.q !== "string") return;
    input.value = m.q.slice(0, MAX_QUERY);
    const hits = await run(input.value);
    if (hits.length) choose(hits[0]);
  });
  texts();
})();
