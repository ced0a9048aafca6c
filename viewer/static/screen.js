// The 一屏统览 screen mode (/viewer?mode=screen): the map full-bleed for the ops-centre wall, a TV or PC, or a
// phone, with no editing chrome. Topics (事件 events, 感知 sensing, 视频 video, 部件 components, 土地 land, 建筑
// buildings) are presets: the layers they switch on, and indicators per district, street, community or grid from
// GET /screen/indicators drawn on the map (extruded or coloured areas); a click on an area drills down one level
// and the indicators follow (the breadcrumb goes back up). New alarms and overdue tickets are a short list that
// flies to the object. The tour visits the streets one after the other.
//
// Dashboard messages (origin checked by viewer.js): {type: "cim:screen.topic", topic}, {type: "cim:screen.area",
// level: "district" | "street" | "community", name} (the area whose children are shown; district: the whole),
// {type: "cim:screen.focus", layer, id} (an object: flown to and ringed), {type: "cim:screen.highlight", layer,
// ids} (rings; [] clears), {type: "cim:screen.tour", on}. The map tells the parent cim:screen.topicChanged {topic},
// cim:screen.areaChanged {level, within, totals}, cim:screen.focused {layer, id, position}, cim:screen.highlighted
// {layer, ids}, cim:screen.tourChanged {on, area}, and cim:clicked {layer, id, attributes} (an area: layer
// "areas:LEVEL", id its name, its figures; any other object: viewer.js's, in either mode).
(() => {
  "use strict";
  const api = window.cimViewer;
  const S = { on: false, topic: null, topics: [], level: "street", within: null, path: [], data: null,
              alerts: [], tour: false, toured: [], focus: null, highlighted: 0, loads: 0, errors: [] };
  window.__cimScreen = S;
  if (!api) return;
  const query = new URLSearchParams(location.search);
  S.on = api.screenMode;
  if (!S.on) return;
  document.documentElement.classList.add("screen");

  const lang = () => (document.documentElement.lang === "en" ? "en" : "zh");
  const locale = () => (lang() === "en" ? "en" : "zh-CN");
  const esc = api.escapeHtml;
  const TEXT = {
    zh: { title: "一屏统览", district: "全区", up: "返回上级", tour: "巡游", tourStop: "停止巡游", alerts: "最新告警",
          noAlerts: "暂无告警", alarm: "告警", overdue: "超时工单", ranking: "排名", loading: "加载中…",
          failed: "指标加载失败", level_street: "街道", level_community: "社区", level_grid: "网格" },
    en: { title: "City overview", district: "District", up: "Up", tour: "Tour", tourStop: "Stop tour",
          alerts: "Latest alerts", noAlerts: "No alerts", alarm: "Alarm", overdue: "Overdue ticket", ranking: "Ranking",
          loading: "Loading…", failed: "Indicators failed to load", level_street: "Streets",
          level_community: "Communities", level_grid: "Grids" },
  };
  const tx = (key) => TEXT[lang()][key];
  const has = (key) => api.config.entries.some((e) => e.key === key);
  const components = (api.config.components && api.config.components.layers) || [];
  const models = api.config.entries.filter((e) => e.group === "models").map((e) => e.key);
  // each topic: its title, the layers it shows, whether the map extrudes the areas (counts) or colours them (rates)
  const TOPICS = {
    events: { zh: "事件", en: "Events", layers: ["tickets"], extruded: true, available: has("tickets") },
    sensing: { zh: "感知", en: "Sensing", layers: ["sensors"], extruded: true, available: has("sensors") },
    video: { zh: "视频", en: "Video", layers: ["cameras"], extruded: false, available: has("cameras") },
    components: { zh: "部件", en: "Components", layers: components.slice(0, 1), extruded: true, available: components.length > 0 },
    land: { zh: "土地", en: "Land", layers: ["parcels", "land"], extruded: false, available: has("parcels") },
    buildings: { zh: "建筑", en: "Buildings", layers: models, extruded: false, available: models.length > 0 },
  };
  S.topics = Object.keys(TOPICS).filter((k) => TOPICS[k].available);
  const CHILD = { district: "street", street: "community", community: "grid" };
  const HEIGHT = { street: 1800, community: 700, grid: 250 };  // metres of the tallest area's column

  // --- the chrome ----------------------------------------------------------------------------------
  const root = document.createElement("div");
  root.id = "screen";
  root.innerHTML = `<header id="screen-top"><h1 id="screen-title"></h1><nav id="screen-topics"></nav>
    <div id="screen-right"><button type="button" id="screen-tour"></button><time id="screen-clock"></time></div></header>
    <nav id="screen-crumbs"></nav>
    <aside id="screen-side"><section id="screen-cards"></section><section id="screen-ranking"><h2></h2><ol></ol></section></aside>
    <aside id="screen-alerts"><h2></h2><ul></ul></aside>`;
  document.body.append(root);
  const $ = (id) => document.getElementById(id);
  $("screen-tour").addEventListener("click", () => setTour(!S.tour));
  const clock = () => { $("screen-clock").textContent = new Date().toLocaleString(locale(), { hour12: false }); };
  clock();
  setInterval(clock, 1000);

  function chrome() {
    $("screen-title").textContent = `${api.config.title || api.t("title").split(" · ")[0]} · ${tx("title")}`;
    const nav = $("screen-topics");
    nav.replaceChildren(...S.topics.map((k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.topic = k;
      b.textContent = TOPICS[k][lang()];
      b.className = k === S.topic ? "on" : "";
      b.addEventListener("click", () => setTopic(k));
      return b;
    }));
    $("screen-tour").textContent = S.tour ? tx("tourStop") : tx("tour");
    $("screen-tour").classList.toggle("on", S.tour);
    crumbs();
    cards();
    alerts();
  }

  function crumbs() {
    const nav = $("screen-crumbs");
    const parts = [{ level: "district", name: null, label: tx("district") }, ...S.path];
    nav.replaceChildren(...parts.map((p, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p.label || p.name;
      b.disabled = i === parts.length - 1;
      b.addEventListener("click", () => goTo(parts.slice(1, i + 1)));
      return b;
    }));
    const level = document.createElement("span");
    level.className = "level";
    level.textContent = tx(`level_${S.level}`);
    nav.append(level);
  }

  const number = (v) => (typeof v === "number" ? v.toLocaleString(locale(), { maximumFractionDigits: 1 }) : String(v ?? "—"));
  const label = (key) => {
    const l = S.data && S.data.labels && S.data.labels[key];
    return l ? { name: l[lang()] || l.zh, unit: l[`unit_${lang()}`] || l.unit_zh || "" } : { name: key, unit: "" };
  };
  function cards() {
    const box = $("screen-cards");
    const ranking = $("screen-ranking");
    ranking.querySelector("h2").textContent = tx("ranking");
    if (!S.data) {
      box.textContent = S.errors.length ? tx("failed") : tx("loading");
      ranking.querySelector("ol").replaceChildren();
      return;
    }
    const figures = Object.entries(S.data.totals).filter(([, v]) => typeof v === "number");
    const breakdowns = Object.entries(S.data.totals).filter(([, v]) => v && typeof v === "object");
    box.innerHTML = figures.map(([k, v]) => {
      const l = label(k);
      return `<div class="card${k === S.data.measure ? " measure" : ""}" data-figure="${esc(k)}"><span class="value">${
        esc(number(v))}</span><span class="unit">${esc(l.unit)}</span><span class="name">${esc(l.name)}</span></div>`;
    }).join("") + breakdowns.map(([k, parts]) => {
      const rows = Object.entries(parts).sort((a, b) => b[1] - a[1]).slice(0, 6);
      const top = Math.max(1, ...rows.map(([, n]) => n));
      const names = (S.data.names && S.data.names[k]) || {};
      const shown = (key) => (names[key] ? names[key][lang()] || names[key].zh : key);
      return `<div class="breakdown" data-figure="${esc(k)}"><h3>${esc(label(k).name)}</h3>${rows.map(([name, n]) =>
        `<div class="bar"><span class="bar-name" title="${esc(shown(name))}">${esc(shown(name))}</span><span class="bar-track"><span style="width:${
          (100 * n / top).toFixed(1)}%"></span></span><span class="bar-n">${esc(number(n))}</span></div>`).join("")}</div>`;
    }).join("");
    const measure = S.data.measure;
    const areas = S.data.areas.features.map((f) => f.properties).sort((a, b) => (b[measure] || 0) - (a[measure] || 0));
    const list = ranking.querySelector("ol");
    list.replaceChildren(...areas.slice(0, 10).map((a) => {
      const li = document.createElement("li");
      li.innerHTML = `<button type="button"><span class="area"></span><span class="n"></span></button>`;
      li.querySelector(".area").textContent = a.area;
      li.querySelector(".n").textContent = number(a[measure]);
      li.querySelector("button").addEventListener("click", () => drill(a));
      return li;
    }));
  }

  // --- the indicators and the areas on the map -------------------------------------------------------
  let request = 0;
  async function load() {
    if (!S.topic) return;
    const mine = ++request;
    api.busy.add("screen");
    S.data = null;
    cards();
    const params = new URLSearchParams({ topic: S.topic, level: S.level });
    if (S.within) params.set("within", S.within);
    try {
      const r = await fetch(`/screen/indicators?${params}`);
      if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
      const data = await r.json();
      if (mine !== request) return;
      S.data = data;
      S.loads += 1;
      draw();
      cards();
      api.notifyParent("cim:screen.areaChanged", { level: S.level, within: S.within, totals: data.totals });
    } catch (err) {
      if (mine === request) S.errors.push(`indicators: ${err.message || err}`);
      cards();
    } finally {
      if (mine === request) api.busy.delete("screen");
    }
  }

  // blue (few) through amber to red (many)
  const RAMP = [[40, 110, 200], [70, 190, 200], [240, 200, 70], [245, 120, 50], [230, 50, 50]];
  function ramp(f) {
    const x = Math.max(0, Math.min(1, f)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(x));
    return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * (x - i)));
  }

  function draw() {
    const layers = [];
    if (S.data) {
      const measure = S.data.measure;
      const features = S.data.areas.features;
      const top = Math.max(1, ...features.map((f) => f.properties[measure] || 0));
      const extruded = TOPICS[S.topic].extruded;
      const ratio = (f) => (f.properties[measure] || 0) / top;
      layers.push(new deck.GeoJsonLayer({
        id: "screen-areas", data: S.data.areas, pickable: true, stroked: true, filled: true, extruded,
        wireframe: extruded, opacity: extruded ? 0.55 : 0.45,
        getElevation: (f) => ratio(f) * HEIGHT[S.level], getFillColor: (f) => [...ramp(ratio(f)), extruded ? 200 : 150],
        getLineColor: [150, 200, 255, 220], lineWidthUnits: "pixels", getLineWidth: 1.5,
        autoHighlight: true, highlightColor: [255, 255, 255, 60],
        updateTriggers: { getElevation: [S.topic, S.level, S.loads], getFillColor: [S.topic, S.level, S.loads] },
      }));
      layers.push(new deck.TextLayer({
        id: "screen-labels", data: features, characterSet: "auto", fontFamily: "Noto Sans CJK SC, sans-serif",
        getPosition: (f) => [...f.properties.centroid, extruded ? ratio(f) * HEIGHT[S.level] + 20 : 5],
        getText: (f) => `${f.properties.area}\n${number(f.properties[measure] || 0)}`,
        getSize: S.level === "grid" ? 12 : 15, sizeUnits: "pixels", getColor: [240, 246, 255, 255],
        outlineWidth: 2, outlineColor: [10, 16, 24, 255], fontSettings: { sdf: true },
        getTextAnchor: "middle", getAlignmentBaseline: "center",
        updateTriggers: { getPosition: [S.loads], getText: [S.loads, lang()] },
      }));
    }
    const rings = [...(S.focus ? [S.focus] : []), ...S.rings];
    api.setUnderlay("screen", layers);
    api.setDecoration("screen", rings.length ? [new deck.ScatterplotLayer({
        id: "screen-rings", data: rings, getPosition: (d) => d.position, stroked: true, filled: false,
        getLineColor: [255, 220, 40, 255], lineWidthUnits: "pixels", getLineWidth: 3, radiusUnits: "pixels",
        getRadius: 18, parameters: { depthTest: false },
      })] : []);
  }
  S.rings = [];

  // --- topics, areas, drilling -----------------------------------------------------------------------
  function setTopic(topic) {
    if (!TOPICS[topic] || !TOPICS[topic].available) return;
    const before = S.topic ? TOPICS[S.topic].layers : [];
    S.topic = topic;
    for (const key of before) if (!TOPICS[topic].layers.includes(key)) api.setLayerVisible(key, false);
    for (const key of TOPICS[topic].layers) api.setLayerVisible(key, true);
    chrome();
    load();
    api.notifyParent("cim:screen.topicChanged", { topic });
  }

  // path: the areas drilled into, [{level, name, bbox}] from the street down
  function goTo(path) {
    S.path = path;
    const last = path[path.length - 1];
    S.within = last ? last.name : null;
    S.level = last ? CHILD[last.level] : "street";
    if (last && last.bbox) api.flyTo(last.bbox);
    else if (!last && districtBox()) api.flyTo(districtBox());
    chrome();
    load();
  }
  function drill(area) {
    if (!CHILD[area.level]) {  // a grid: nothing below it, the map goes there
      api.flyTo(area.bbox);
      return;
    }
    goTo([...S.path, { level: area.level, name: area.area, label: area.area, bbox: area.bbox }]);
  }
  function districtBox() {
    const boundary = api.config.entries.find((e) => e.key === "futian_boundary") || api.config.entries.find((e) => e.bbox);
    return boundary ? boundary.bbox : null;
  }
  // the areas of a level (the current topic's figures with them), as GeoJSON features' properties
  async function areasOf(level) {
    const r = await fetch(`/screen/indicators?${new URLSearchParams({ topic: S.topic, level })}`);
    return (await r.json()).areas.features.map((f) => f.properties);
  }
  // an area by its level and name: a street from the district's figures, a community from its street's
  async function focusArea(level, name) {
    if (level === "district" || !name) { goTo([]); return; }
    const path = [];
    const streets = await areasOf("street");
    if (level === "community") {
      const found = (await areasOf("community")).find((a) => a.area === name);
      if (!found) { S.errors.push(`no community ${name}`); return; }
      const s = streets.find((a) => a.area === found.parent);
      if (s) path.push({ level: "street", name: s.area, label: s.area, bbox: s.bbox });
      path.push({ level: "community", name, label: name, bbox: found.bbox });
    } else {
      const s = streets.find((a) => a.area === name);
      if (!s) { S.errors.push(`no street ${name}`); return; }
      path.push({ level: "street", name, label: name, bbox: s.bbox });
    }
    goTo(path);
  }

  // --- an object by id: flown to and ringed ------------------------------------------------------------
  async function itemOf(layer, id) {
    const r = await fetch(`/layers/${encodeURIComponent(layer)}/items?id=${encodeURIComponent(id)}&limit=1`);
    if (!r.ok) return null;
    const fc = await r.json();
    return fc.features && fc.features[0] ? fc.features[0] : null;
  }
  function boxOf(geometry) {
    const xs = [], ys = [];
    const walk = (c) => (typeof c[0] === "number" ? (xs.push(c[0]), ys.push(c[1])) : c.forEach(walk));
    walk(geometry.coordinates);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }
  async function focusObject(layer, id, position) {
    let where = position;
    if (!where) {
      const f = await itemOf(layer, id);
      if (!f) { S.errors.push(`no ${layer} ${id}`); return; }
      const [w, s, e, n] = boxOf(f.geometry);
      where = [(w + e) / 2, (s + n) / 2];
    }
    if (TOPICS[S.topic] && !TOPICS[S.topic].layers.includes(layer) && has(layer)) api.setLayerVisible(layer, true);
    S.focus = { layer, id, position: where };
    api.setView({ longitude: where[0], latitude: where[1], zoom: 17.5, pitch: 45 }, 1500);
    draw();
    api.notifyParent("cim:screen.focused", { layer, id, position: where });
  }
  async function highlight(layer, ids) {
    const found = [];
    for (const id of (ids || []).slice(0, 200)) {
      const f = await itemOf(layer, id);
      if (f) { const [w, s, e, n] = boxOf(f.geometry); found.push({ layer, id, position: [(w + e) / 2, (s + n) / 2] }); }
    }
    S.rings = found;
    S.highlighted = found.length;
    draw();
    api.notifyParent("cim:screen.highlighted", { layer, ids: found.map((f) => f.id) });
  }

  // --- alerts: new alarms and overdue tickets ----------------------------------------------------------
  async function loadAlarms() {
    try {
      const r = await fetch("/live/alarms?limit=20");
      if (!r.ok) return;
      const { alarms } = await r.json();
      for (const a of alarms.reverse()) addAlert({ kind: "alarm", layer: "sensors", id: a.sensor_id,
        text: `${a.category || ""} ${a.message || a.kind || ""}`.trim(), where: a.street || "", at: a.raised_at,
        position: [a.lon, a.lat] });
    } catch (err) { S.errors.push(`alarms: ${err}`); }
  }
  function addAlert(a) {
    S.alerts = [a, ...S.alerts.filter((x) => !(x.kind === a.kind && x.id === a.id))].slice(0, 12);
    alerts();
  }
  function overdueTickets() {
    const feed = api.liveFeed;
    const tickets = feed ? feed.tickets() : null;
    if (!tickets) return;
    const overdue = Object.values(tickets).filter((t) => t.overdue).sort((a, b) => b.due_at - a.due_at).slice(0, 5);
    for (const t of overdue.reverse()) addAlert({ kind: "overdue", layer: "tickets", id: t.id, text: t.category || "",
      where: t.channel || "", at: new Date(t.due_at * 1000).toISOString(), position: [t.lon, t.lat] });
  }
  function alerts() {
    $("screen-alerts").querySelector("h2").textContent = tx("alerts");
    const list = $("screen-alerts").querySelector("ul");
    if (!S.alerts.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = tx("noAlerts");
      list.replaceChildren(li);
      return;
    }
    list.replaceChildren(...S.alerts.map((a) => {
      const li = document.createElement("li");
      li.className = a.kind;
      li.innerHTML = `<button type="button"><span class="kind"></span><span class="what"></span><span class="when"></span></button>`;
      li.querySelector(".kind").textContent = a.kind === "alarm" ? tx("alarm") : tx("overdue");
      li.querySelector(".what").textContent = `${a.id} ${a.text} ${a.where}`.trim();
      li.querySelector(".when").textContent = a.at ? new Date(a.at).toLocaleTimeString(locale(), { hour12: false }) : "";
      li.querySelector("button").addEventListener("click", () => focusObject(a.layer, a.id, a.position));
      return li;
    }));
  }
  if (api.liveFeed) {
    api.liveFeed.onAlarm.push((a) => addAlert({ kind: "alarm", layer: "sensors", id: a.sensor_id,
      text: `${a.category || ""} ${a.message || a.kind || ""}`.trim(), where: a.street || "", at: a.raised_at,
      position: a.lon !== undefined ? [a.lon, a.lat] : null }));
  }

  // --- the tour: each street in turn --------------------------------------------------------------------
  let tourTimer = null;
  async function setTour(on) {
    S.tour = !!on;
    clearInterval(tourTimer);
    chrome();
    if (!S.tour) { goTo([]); api.notifyParent("cim:screen.tourChanged", { on: false }); return; }
    const stops = await areasOf("street");
    let i = 0;
    const next = () => {
      if (!S.tour || !stops.length) return;
      const s = stops[i++ % stops.length];
      S.toured.push(s.area);
      goTo([{ level: "street", name: s.area, label: s.area, bbox: s.bbox }]);
      api.notifyParent("cim:screen.tourChanged", { on: true, area: s.area });
    };
    next();
    tourTimer = setInterval(next, Number(query.get("tourSeconds")) * 1000 || 12000);
  }

  // --- wiring ------------------------------------------------------------------------------------------------
  const baseClick = api.deck.props.onClick;
  api.deck.setProps({
    onClick: (info, event) => {
      if (info.layer && info.layer.id === "screen-areas" && info.object) {
        const p = info.object.properties;
        const attributes = Object.fromEntries(Object.entries(p).filter(([, v]) => typeof v !== "object"));
        api.notifyParent("cim:clicked", { layer: `areas:${p.level}`, id: p.area, attributes });
        drill(p);
        return;
      }
      if (baseClick) baseClick(info, event);
    },
  });
  api.onMessage.push((m) => {
    if (m.type === "cim:screen.topic") setTopic(String(m.topic));
    else if (m.type === "cim:screen.area") focusArea(String(m.level || "district"), m.name ? String(m.name) : null);
    else if (m.type === "cim:screen.focus") focusObject(String(m.layer), String(m.id));
    else if (m.type === "cim:screen.highlight") highlight(String(m.layer), Array.isArray(m.ids) ? m.ids.map(String) : []);
    else if (m.type === "cim:screen.tour") setTour(!!m.on);
  });
  api.onLanguage.push(() => { chrome(); draw(); });

  // the first topic once the page has told the parent it is ready (viewer.js, at DOMContentLoaded): its
  // topicChanged and areaChanged then come after cim:ready
  const first = query.get("topic");
  const start = () => setTimeout(() => setTopic(S.topics.includes(first) ? first : S.topics[0]));
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  loadAlarms();
  setTimeout(overdueTickets, 3000);
  setInterval(overdueTickets, 30000);
})();
