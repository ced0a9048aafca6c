// The CIM viewer page: turns the pydeck JSON into deck.gl layers, and adds the
// layer tree (groups that fold; on/off, opacity, zoom to) with a legend, tooltips, the language switch, the
// URL state (#view=lon,lat,zoom,pitch,bearing&layers=...&opacity=...&fold=...&lang=...)
// and a small postMessage API for a dashboard that embeds the page in an iframe.
// Everything it loads comes from this server; loaders.gl workers are off.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("cim-config").textContent);
  const entries = config.entries;
  const result = { errors: [], rendered: 0, layers: [] };
  window.__cimResult = result;

  // --- state, from the URL ----------------------------------------------------
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  // the screen mode (screen.js) starts from the base map alone: its topics switch their layers on
  const screenMode = query.get("mode") === "screen";
  const state = {
    lang: (hash.get("lang") || query.get("lang") || "zh") === "en" ? "en" : "zh",
    visible: new Set(hash.has("layers") ? hash.get("layers").split(",").filter(Boolean)
                                        : entries.filter((e) => e.visible && (!screenMode || e.group === "base")).map((e) => e.key)),
    opacity: Object.fromEntries((hash.get("opacity") || "").split(",").filter(Boolean)
                                  .map((kv) => kv.split(":")).map(([k, v]) => [k, Number(v)])),
    hidden: new Set((hash.get("hide") || "").split(",").filter(Boolean)),  // BIM storey layers switched off
    // the layer tree's folded groups (at first: those with no layer shown)
    collapsed: new Set(hash.has("fold") ? hash.get("fold").split(",").filter(Boolean) : null),
  };
  if (!hash.has("fold")) {
    for (const g of config.groups || []) {
      if (g !== "base" && !entries.some((e) => e.group === g && state.visible.has(e.key))) state.collapsed.add(g);
    }
  }
  let highlight = null;  // the footprint of the element found by a search
  const overlays = {};  // entry key -> deck layers drawn by live.js instead of the entry's vector tiles
  const decorations = {};  // key -> deck layers drawn over everything, not a layer of the list (search.js: the hit's outline)
  const underlays = {};
  const GROUND = "rasters";  // the underlay under every other one  // key -> deck layers drawn under everything, each its own visibility (rasters.js: imagery, terrain)
  const urlWriters = [];  // (URLSearchParams) => void: a module's own state in the URL (rasters.js)
  const rastersSection = document.getElementById("rasters");  // moved into the tree's base map group
  const layerTransforms = [];  // (layer) => layer, see api.layerTransforms
  const busy = new Set();  // modules still setting up what they draw: the page is not done before they are
  // the last module done: one more frame, in which the page can say it is done (nothing else may draw again)
  busy.delete = (key) => {
    const had = Set.prototype.delete.call(busy, key);
    if (had && !busy.size && window.cimViewer) window.cimViewer.deck.redraw("settled");
    return had;
  };
  let drape = null;  // a layer extension every layer but the 3D Tiles and the underlays gets (rasters.js: the terrain's)
  const draped = (layer) => (drape && !(layer instanceof deck.Tile3DLayer)
    ? layer.clone({ extensions: [...(layer.props.extensions || []), drape] }) : layer);
  const liveKeys = new Set(config.live || []);
  let viewState = { ...config.deck.initialViewState };
  if (hash.has("view")) {
    const [longitude, latitude, zoom, pitch, bearing] = hash.get("view").split(",").map(Number);
    if ([longitude, latitude, zoom].every(Number.isFinite)) viewState = { longitude, latitude, zoom, pitch: pitch || 0, bearing: bearing || 0 };
  }
  const t = (key) => config.i18n[state.lang][key];
  const fieldOrder = Object.keys(config.fields);

  function writeUrl() {
    const p = new URLSearchParams();
    p.set("view", [viewState.longitude.toFixed(6), viewState.latitude.toFixed(6), viewState.zoom.toFixed(2),
                   (viewState.pitch || 0).toFixed(1), (viewState.bearing || 0).toFixed(1)].join(","));
    p.set("layers", [...state.visible].join(","));
    const op = Object.entries(state.opacity).filter(([, v]) => v !== 1).map(([k, v]) => `${k}:${v}`);
    if (op.length) p.set("opacity", op.join(","));
    if (state.hidden.size) p.set("hide", [...state.hidden].join(","));
    p.set("fold", [...state.collapsed].join(","));
    p.set("lang", state.lang);
    for (const f of urlWriters) f(p);
    history.replaceState(null, "", `${location.pathname}${location.search}#${p.toString()}`);
  }

  // --- deck ------------------------------------------------------------------
  const converter = new deck.JSONConverter({
    configuration: new deck.JSONConfiguration({
      classes: deck,
      constants: { Tiles3DLoader: loaders.Tiles3DLoader },
      enumerations: { COORDINATE_SYSTEM: deck.COORDINATE_SYSTEM },
    }),
  });
  const converted = converter.convert({ layers: config.deck.layers });
  const entryOf = {};
  for (const e of entries) for (const id of e.ids) entryOf[id] = e;
  // the layers live.js draws itself (latest state, pushed) are left out of the converted ones, once
  const baseLayers = converted.layers.filter((layer) => !(entryOf[layer.id] && liveKeys.has(entryOf[layer.id].key)));

  function currentLayers() {
    // the ground first (rasters.js: imagery and terrain, whenever its list arrives), then the other underlays
    const layers = [...(underlays[GROUND] || []),
                    ...Object.entries(underlays).filter(([k]) => k !== GROUND).flatMap(([, v]) => v)];
    layers.push(...baseLayers.map((layer) => {
      const e = entryOf[layer.id];
      const visible = (e ? state.visible.has(e.key) : layer.props.visible) && !state.hidden.has(layer.id);
      const opacity = e && state.opacity[e.key] !== undefined ? state.opacity[e.key] : 1;
      let drawn = layer.clone({ visible, opacity });
      for (const f of layerTransforms) drawn = f(drawn);
      return draped(drawn);
    }));
    for (const [key, extra] of Object.entries(overlays)) {
      const opacity = state.opacity[key] !== undefined ? state.opacity[key] : 1;
      // a layer of an overlay may be off by itself (components.js: a 大类's models switched off)
      for (const layer of extra) layers.push(draped(layer.clone({ visible: state.visible.has(key) && layer.props.visible, opacity })));
    }
    for (const extra of Object.values(decorations)) layers.push(...extra);
    if (highlight) {
      layers.push(new deck.GeoJsonLayer({ id: "search-highlight", data: highlight, stroked: true, filled: true,
        getFillColor: [255, 200, 0, 60], getLineColor: [255, 200, 0, 255], lineWidthUnits: "pixels", getLineWidth: 3 }));
    }
    return layers;
  }

  // an object of a layer's data: the terrain's mesh picks as a datum of its own (a number), with nothing to say
  const isFeature = (object) => Boolean(object) && typeof object === "object";

  function tooltip({ object, layer }) {
    if (!isFeature(object) || !layer) return null;
    const e = entryOf[layer.id] || entryOf[layer.root?.id] || null;
    const props = object.properties || {};
    const rank = (k) => { const i = fieldOrder.indexOf(k); return i < 0 ? fieldOrder.length : i; };
    const rows = Object.entries(props)
      .filter(([k, v]) => v !== null && v !== "" && !k.startsWith("layerName"))
      .sort(([a], [b]) => rank(a) - rank(b))
      .map(([k, v]) => {
        const label = config.fields[k] ? config.fields[k][state.lang] : k;
        const value = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : String(v);
        return `<tr><th>${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`;
      }).join("");
    const title = e ? e.title[state.lang] : layer.id;
    return { html: `<div class="tt-title">${escapeHtml(title)}</div><table>${rows}</table>`, className: "cim-tooltip" };
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  let urlTimer = null;
  const deckgl = new deck.Deck({
    parent: document.getElementById("map"),
    views: [new deck.MapView({ repeat: false })],
    initialViewState: viewState,
    controller: true,
    layers: currentLayers(),
    getTooltip: tooltip,
    onViewStateChange: ({ viewState: vs }) => {
      viewState = vs;
      for (const f of api.onView) f(vs);
      clearTimeout(urlTimer);
      urlTimer = setTimeout(() => { writeUrl(); notifyParent("cim:viewChanged", { view: viewState }); }, 300);
      return vs;
    },
    onClick: (info) => clicked(info),
    onError: (error, layer) => { result.errors.push(`${layer ? layer.id : "deck"}: ${error && error.message || error}`); },
    onAfterRender: () => {
      result.rendered += 1;
      if (result.rendered === 1) result.firstFrameMs = performance.now();
      const layers = deckgl.props.layers || [];
      result.layers = layers.filter((l) => l.props.visible).map((l) => l.id);
      // a few frames in (the first tiles asked for); a page with no layer draws once or twice and stops
      if (!window.__cimDone && (result.rendered > 2 || !entries.length) && !busy.size && layers.every(window.cimSettled)) {
        result.loadedMs = result.loadedMs || performance.now();
        setTimeout(() => { window.__cimDone = true; }, 500);  // a few more frames for the last tiles to draw
      }
    },
  });

  // the parent is told what was clicked: the entry's key (or the deck layer's id), the object's id and its
  // attributes as the server gave them to this role (the column allow-list), nothing else
  function clicked(info) {
    if (!info.layer || !isFeature(info.object)) return;
    const e = entryOf[info.layer.id] || entryOf[info.layer.root?.id] || null;
    const props = info.object.properties || {};
    const attributes = Object.fromEntries(Object.entries(props).filter(([k, v]) =>
      !k.startsWith("layerName") && (v === null || ["string", "number", "boolean"].includes(typeof v))));
    const id = props.id ?? info.object.id ?? null;
    result.clicked = { layer: e ? e.key : info.layer.id, id, attributes };
    notifyParent("cim:clicked", result.clicked);
  }

  function render() {
    deckgl.setProps({ layers: currentLayers() });
    foldGroups();
    legend();
    writeUrl();
  }

  function flyTo(bbox) {
    const { width, height } = deckgl;
    const fitted = new deck.WebMercatorViewport({ width, height }).fitBounds(
      [[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 60 });
    viewState = { longitude: fitted.longitude, latitude: fitted.latitude, zoom: Math.min(fitted.zoom, 17),
                  pitch: viewState.pitch || 0, bearing: viewState.bearing || 0 };
    deckgl.setProps({ initialViewState: { ...viewState, transitionDuration: 1200,
                                          transitionInterpolator: new deck.FlyToInterpolator() } });
    writeUrl();
  }

  // --- the panel ---------------------------------------------------------------
  function buildPanel() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    document.getElementById("title").textContent = t("title");
    document.getElementById("layers-title").textContent = t("layers");
    document.getElementById("lang").textContent = t("language");
    const list = document.getElementById("layer-list");
    list.replaceChildren();
    if (!entries.length) {
      const li = document.createElement("li");
      li.textContent = t("noLayers");
      list.append(li);
    }
    // the layer tree: one collapsible group each of base map (with the imagery and terrain of rasters.js),
    // planning and land, 3D models and city operations, in that order; a group without layers is left out
    const groups = {};
    for (const g of config.groups || []) {
      const li = document.createElement("li");
      li.className = "group";
      li.dataset.group = g;
      li.innerHTML = `<button type="button" class="group-head" aria-expanded="true"><span class="caret"></span>
        <span class="group-name"></span><span class="group-count"></span></button><ul class="entries"></ul>`;
      li.querySelector(".group-name").textContent = t(`group_${g}`);
      const head = li.querySelector(".group-head");
      head.addEventListener("click", () => {
        state.collapsed.has(g) ? state.collapsed.delete(g) : state.collapsed.add(g);
        foldGroups();
        writeUrl();
      });
      groups[g] = li;
    }
    // imagery and terrain first (rasters.js fills the section; kept across rebuilds of the tree)
    if (rastersSection && groups.base) groups.base.querySelector(".entries").before(rastersSection);
    for (const e of entries) {
      const li = document.createElement("li");
      li.dataset.key = e.key;
      const count = e.count === null ? t("tileset") : `${e.count.toLocaleString(state.lang === "zh" ? "zh-CN" : "en")} ${t("features")}`;
      li.innerHTML = `<div class="head"><label><input type="checkbox" class="toggle"> ${symbol(e.legend)}
        <span class="name"></span></label><span class="count"></span></div>
        <div class="row"><span class="op-label"></span><input type="range" class="opacity" min="0" max="1" step="0.05">
        <button type="button" class="fly"></button></div>`;
      li.querySelector(".name").textContent = e.title[state.lang] + (e.tileset && e.count !== null ? ` · ${t("tileset")}` : "");
      li.querySelector(".count").textContent = count;
      li.querySelector(".op-label").textContent = t("opacity");
      const toggle = li.querySelector(".toggle");
      toggle.checked = state.visible.has(e.key);
      toggle.addEventListener("change", () => {
        toggle.checked ? state.visible.add(e.key) : state.visible.delete(e.key);
        render();
        for (const f of api.onVisibility) f(e.key, toggle.checked);  // components.js opens its panel with its layer
      });
      const slider = li.querySelector(".opacity");
      slider.value = state.opacity[e.key] ?? 1;
      slider.addEventListener("input", () => { state.opacity[e.key] = Number(slider.value); render(); });
      const fly = li.querySelector(".fly");
      fly.textContent = t("flyTo");
      fly.disabled = !e.bbox;
      fly.addEventListener("click", () => flyTo(e.bbox));
      if (e.bim) li.append(bimSection(e));
      const group = groups[e.group] || groups.planning;
      (group ? group.querySelector(".entries") : list).append(li);
    }
    for (const g of config.groups || []) {
      if (groups[g].querySelector("li[data-key]") || (g === "base" && entries.length)) list.append(groups[g]);
    }
    if (!entries.length && rastersSection) list.append(rastersSection);  // no layer, perhaps imagery
    foldGroups();
    legend();
  }

  function foldGroups() {
    for (const li of document.querySelectorAll("#layer-list li.group")) {
      const open = !state.collapsed.has(li.dataset.group);
      li.classList.toggle("collapsed", !open);
      li.querySelector(".group-head").setAttribute("aria-expanded", String(open));
      const keys = [...li.querySelectorAll("li[data-key]")].map((x) => x.dataset.key);
      li.querySelector(".group-count").textContent = keys.length ? `${keys.filter((k) => state.visible.has(k)).length}/${keys.length}` : "";
    }
  }

  // a layer's symbol in its own style (rgba fill and outline, line width): polygon, line, point, model, BIM, oblique
  function symbol(l, size = 16) {
    if (!l) return "";
    const c = (a) => `rgba(${a[0]},${a[1]},${a[2]},${((a[3] ?? 255) / 255).toFixed(2)})`;
    const w = Math.min(Math.max(l.width || 1, 1), 3);
    const stroke = l.line[3] ? c(l.line) : "none";
    const shapes = {
      polygon: `<path d="M2 4 L11 2 L14 9 L8 14 L2 11 Z" fill="${c(l.fill)}" stroke="${stroke}" stroke-width="${w}"/>`,
      line: `<path d="M1 13 L5 6 L10 10 L15 3" fill="none" stroke="${c(l.line[3] ? l.line : l.fill)}" stroke-width="${w + 0.5}"/>`,
      point: `<circle cx="8" cy="8" r="4.5" fill="${c([...l.fill.slice(0, 3), 255])}" stroke="#0b1017" stroke-width="1"/>`,
      model: `<path d="M8 2 L14 5 L8 8 L2 5 Z" fill="${c([...l.fill.slice(0, 3), 255])}"/>` +
        `<path d="M2 5 L8 8 L8 15 L2 12 Z" fill="${c([...l.fill.slice(0, 3).map((v) => Math.round(v * 0.75)), 255])}"/>` +
        `<path d="M14 5 L8 8 L8 15 L14 12 Z" fill="${c([...l.fill.slice(0, 3).map((v) => Math.round(v * 0.55)), 255])}"/>`,
      bim: `<path d="M8 2 L14 5 L8 8 L2 5 Z" fill="#9cc3ff"/><path d="M2 5 L8 8 L8 15 L2 12 Z" fill="#5f8fd6"/>` +
        `<path d="M14 5 L8 8 L8 15 L14 12 Z" fill="#3f6db5"/><path d="M2 8.5 L8 11.5 L14 8.5" fill="none" stroke="#e6eefc" stroke-width="0.8"/>`,
      oblique: `<rect x="1.5" y="1.5" width="13" height="13" rx="2" fill="url(#cim-photo)" stroke="${stroke}" stroke-width="${w}"/>`,
    };
    const defs = l.symbol === "oblique" ? `<defs><linearGradient id="cim-photo" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="#7d8f6a"/><stop offset="0.5" stop-color="#b5a98c"/><stop offset="1" stop-color="#5d7488"/></linearGradient></defs>` : "";
    return `<svg class="symbol" data-symbol="${l.symbol}" width="${size}" height="${size}" viewBox="0 0 16 16" aria-hidden="true">${
      defs}${shapes[l.symbol] || shapes.polygon}</svg>`;
  }

  // the legend: every layer shown, by its symbol, in the panel's order
  function legend() {
    const box = document.getElementById("legend");
    if (!box) return;
    const shown = entries.filter((e) => state.visible.has(e.key));
    box.hidden = !shown.length;
    box.innerHTML = `<h2>${escapeHtml(t("legend"))}</h2><ul>${shown.map((e) =>
      `<li data-key="${escapeHtml(e.key)}">${symbol(e.legend, 18)}<span>${escapeHtml(e.title[state.lang])}</span></li>`).join("")}</ul>`;
  }

  // --- a BIM model: its storeys (each can be hidden), its classes, element search ---
  function bimSection(e) {
    const box = document.createElement("details");
    box.className = "bim";
    box.open = true;
    box.innerHTML = `<summary></summary><ul class="storeys"></ul><div class="classes"></div>
      <input type="search" class="find"><ul class="results"></ul>`;
    box.querySelector("summary").textContent = `${t("storeys")} · ${t("classes")}`;
    const storeyList = box.querySelector(".storeys");
    for (const s of e.bim.storeys) {
      const li = document.createElement("li");
      li.dataset.storey = s.name;
      li.innerHTML = `<label><input type="checkbox"> <span></span></label> <span class="count"></span>`;
      li.querySelector("span").textContent = s.name;
      const box = li.querySelector("input");
      box.checked = !state.hidden.has(s.id);
      box.addEventListener("change", () => { box.checked ? state.hidden.delete(s.id) : state.hidden.add(s.id); render(); });
      storeyList.append(li);
    }
    fetch(`/bim/${encodeURIComponent(e.key)}`).then((r) => r.json()).then((info) => {
      for (const s of info.storeys || []) {
        const li = storeyList.querySelector(`li[data-storey="${CSS.escape(s.name)}"] .count`);
        if (li) li.textContent = s.elements;
      }
      box.querySelector(".classes").textContent =
        (info.classes || []).map((c) => `${c.ifc_class} ${c.elements}`).join(" · ");
    }).catch((err) => result.errors.push(`bim ${e.key}: ${err}`));
    const find = box.querySelector(".find");
    const results = box.querySelector(".results");
    find.placeholder = t("search");
    let timer = null;
    find.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => search(e, find.value, results), 250); });
    return box;
  }

  async function search(e, text, results) {
    results.replaceChildren();
    if (!text.trim()) return;
    const found = await (await fetch(`/bim/${encodeURIComponent(e.key)}/search?q=${encodeURIComponent(text.trim())}`)).json();
    if (!found.length) {
      const li = document.createElement("li");
      li.textContent = t("noResults");
      results.append(li);
    }
    for (const el of found) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${el.name || el.global_id} · ${el.ifc_class} · ${el.storey || ""}`;
      button.addEventListener("click", () => showElement(e, el));
      li.append(button);
      results.append(li);
    }
  }

  async function showElement(e, el) {
    const items = await (await fetch(`/layers/${encodeURIComponent(e.key)}/items?global_id=${encodeURIComponent(el.global_id)}`)).json();
    highlight = items;
    const [w, s, east, n] = el.bbox;
    const pad = Math.max(east - w, n - s, 0.0002);  // at least some 20 m around a small element
    flyTo([w - pad, s - pad, east + pad, n + pad]);
    render();
    result.found = el.global_id;
  }
  document.getElementById("lang").addEventListener("click", () => api.setLanguage(state.lang === "zh" ? "en" : "zh"));

  // --- embedding: the big-screen dashboard drives the viewer through postMessage ---
  // only the dashboards the server names (CIM_FRAME_ANCESTORS) and the page's own origin may drive it,
  // and its messages go to the parent's origin only, never "*"
  const embedOrigins = new Set([location.origin, ...(config.embedOrigins || [])]);
  const ancestor = (location.ancestorOrigins && location.ancestorOrigins[0]) || (document.referrer && new URL(document.referrer).origin);
  function notifyParent(type, payload) {
    if (window.parent === window || !ancestor || !embedOrigins.has(ancestor)) return;
    window.parent.postMessage({ type, ...payload }, ancestor);
  }
  // the camera to a view (any of longitude, latitude, zoom, pitch, bearing), in ms (0: at once)
  function setView(view, ms = 0) {
    viewState = { ...viewState, ...view };
    deckgl.setProps({ initialViewState: { ...viewState, transitionDuration: ms,
                                          transitionInterpolator: ms ? new deck.FlyToInterpolator() : undefined } });
    for (const f of api.onView) f(viewState);
    writeUrl();
  }

  // 3D Tiles given an extension after their tiles were drawn (swipe.js: a side; models.js: the mask). A Tile3DLayer
  // keeps one sublayer per tile and makes them again only when a prop other than `extensions` changes, and its glTF
  // sublayer (ScenegraphLayer) builds its models once, with the extensions it had then. retile(layer, key, state)
  // gives it sublayer props that change with `state` (its tiles' sublayers are made again) and a ScenegraphLayer
  // that builds its models again when its extensions change (unless the layer has a sublayer class of its own).
  // The props are kept per (props before, key, state): the same ones for the same state, nothing made again.
  const Rebuilt = deck.ScenegraphLayer && class extends deck.ScenegraphLayer {
    updateState(params) {
      super.updateState(params);
      const { props, oldProps, changeFlags } = params;
      if (changeFlags.extensionsChanged && props.scenegraph && props.scenegraph === oldProps.scenegraph) this._updateScenegraph();
    }
  };
  if (Rebuilt) Rebuilt.layerName = "RetiledScenegraphLayer";
  const NO_SUBLAYER_PROPS = {};
  const retiled = new WeakMap();  // the layer's sublayer props -> `${key}=${state}` -> the ones given
  function retile(layer, key, state) {
    const own = layer.props._subLayerProps || NO_SUBLAYER_PROPS;
    if (!retiled.has(own)) retiled.set(own, new Map());
    const made = retiled.get(own), id = `${key}=${state}`;
    if (!made.has(id)) {
      made.set(id, { ...own, scenegraph: { ...(Rebuilt ? { type: Rebuilt } : {}), ...(own.scenegraph || {}) }, [key]: { state } });
    }
    return layer.clone({ _subLayerProps: made.get(id) });
  }

  const api = {
    flyTo,
    setView,
    screenMode,  // /viewer?mode=screen (screen.js; rasters.js: the imagery only on the ground)
    onView: [],  // (viewState) on every move of the camera (tools.js: the scale bar and the north arrow)
    // a place on the map for a module's controls: "top-right" (tools), "top-center" (search), "bottom-left" (scale)
    slot: (name) => document.getElementById(`slot-${name}`),
    setLayerVisible(key, visible) {
      visible ? state.visible.add(key) : state.visible.delete(key);
      const e = entries.find((x) => x.key === key);
      if (visible && e) state.collapsed.delete(e.group);  // its group unfolds
      buildPanel();
      render();
      for (const f of api.onVisibility) f(key, visible);
    },
    setLanguage(lang) { state.lang = lang === "en" ? "en" : "zh"; buildPanel(); writeUrl(); for (const f of api.onLanguage) f(); },
    get viewState() { return { ...viewState }; },
    liveKeys,  // the entries live.js draws
    isVisible: (key) => state.visible.has(key),
    setOverlay(key, layers) { overlays[key] = layers; deckgl.setProps({ layers: currentLayers() }); },
    setDecoration(key, layers) { decorations[key] = layers; deckgl.setProps({ layers: currentLayers() }); },
    setUnderlay(key, layers) { underlays[key] = layers; deckgl.setProps({ layers: currentLayers() }); },
    // layers on the terrain: 2D ones draped on it, 3D ones (extruded, points) lifted by its height
    // (layer) => layer: applied to every layer of the list as it is drawn (models.js: the white model masked
    // where a BIM model or an oblique production stands); api.redraw() after a change
    layerTransforms,
    retile,
    redraw: () => deckgl.setProps({ layers: currentLayers() }),
    setDrape(extension) { if (drape !== extension) { drape = extension; deckgl.setProps({ layers: currentLayers() }); } },
    initialHash: hash,  // the URL's state as the page opened (the page rewrites its URL at once)
    onWriteUrl: urlWriters,
    writeUrl,
    busy,
    tooltip,
    t,
    escapeHtml,
    onLanguage: [],  // live.js redraws its text when the language changes
    onVisibility: [],  // (key, visible): land.js and components.js open or close their panels with their layers
    onMessage: [],  // (message): the dashboard's messages of other modules (land.js: cim:land.select;
                    // components.js: cim:components.select), origin checked
    notifyParent,
    config,
    deck: deckgl,
  };
  window.cimViewer = api;
  // messages: {type: "cim:flyTo", bbox}, {type: "cim:setLayerVisible", key, visible} (key "land": the land
  // panel), {type: "cim:setLanguage", lang}, {type: "cim:land.select", parcel_id} (land.js),
  // {type: "cim:components.select", name, id} (components.js); the viewer sends cim:ready {layers},
  // cim:viewChanged {view}, cim:land.selected {parcel_id, verdict} and cim:components.selected {name, id, class_code}
  window.addEventListener("message", (event) => {
    if (!embedOrigins.has(event.origin) || event.source !== window.parent) return;  // ignored, not obeyed
    const m = event.data || {};
    if (m.type === "cim:flyTo" && Array.isArray(m.bbox)) api.flyTo(m.bbox);
    else if (m.type === "cim:setLayerVisible") api.setLayerVisible(m.key, !!m.visible);
    else if (m.type === "cim:setLanguage") api.setLanguage(m.lang);
    else for (const f of api.onMessage) f(m);
  });

  buildPanel();
  writeUrl();
  // ready once every script of the page has run (live.js, land.js): their commands are then obeyed
  const ready = () => notifyParent("cim:ready", { layers: entries.map((e) => e.key) });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
