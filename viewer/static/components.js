// City components (城市部件) on the viewer: one panel per component layer with its class tree
// (大类 > 小类, each with its count and a checkbox; a 小类 has its colour), the points of the
// layer's vector tiles coloured by class (the components as seen from afar), the instanced
// models of each 大类 from its own external tileset (they load only near the ground), a
// search by component id, and one component's file (一物一档): its class, place, attributes,
// the sensors on or near it (their state and alarms) and the tickets about it (their stages).
// The generic entry of the layer in the layer list switches it (viewer.js hands its
// visibility over); nothing is fetched until the layer is switched on.
// A dashboard may send {type: "cim:components.select", name, id}; the viewer tells it
// {type: "cim:components.selected", name, id, class_code} (see viewer.js).
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: layers (GET /components, null until loaded), classes (GET /components/classes),
  // counts (layer -> {class code: n}), shown (layer -> what is drawn: classes and majors on, points and
  // instances in the loaded tiles), selected (the file), ready (layer -> true/false once loaded), message, errors
  const comp = { layers: null, classes: null, majors: null, counts: {}, shown: {}, ready: {}, selected: null,
                 message: "", errors: [] };
  window.__cimComponents = comp;
  if (!api || !api.config.components || !api.config.components.layers.length) return;
  const { t, escapeHtml: esc } = api;
  const setup = api.config.components;  // {layers: [names], base, loadOptions (of the vector tiles)}
  const names = setup.layers;
  const $ = (id) => document.getElementById(id);
  const GREY = [150, 155, 165];
  const POINTS = (name) => `components:${name}:points`;
  const MODELS = (name, major) => `components:${name}:models:${major}`;
  const SELECTED = (name) => `components:${name}:selected`;

  // --- helpers ---------------------------------------------------------------------------------
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k]);
  const lang = () => (document.documentElement.lang === "en" ? "en" : "zh");
  const locale = () => (lang() === "en" ? "en" : "zh-CN");
  const num = (v, digits = 0) => (v === null || v === undefined ? "—"
    : Number(v).toLocaleString(locale(), { maximumFractionDigits: digits }));
  const when = (at) => (at ? new Date(at).toLocaleString(locale()) : "—");
  const title = (named, fallback) => (named && named.name ? named.name[lang()] || named.name.zh : fallback);
  const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

  let catalogue = null;  // once loaded: {layers: name -> GET /components' layer, classes: code -> class, majors: code -> major}
  const state = {};  // per layer: {ready, counts, hidden (class codes), open (majors unfolded), version, loading}
  for (const name of names) state[name] = { ready: null, counts: null, hidden: new Set(), open: new Set(), version: 0 };
  let file = null;  // the selected component's file
  let asked = 0;  // the latest selection asked for: older answers are dropped

  const classOf = (code) => (catalogue && catalogue.classes.get(code)) || null;
  const colourOf = (code) => {
    const c = classOf(code);
    return c ? c.colour : GREY;
  };
  const majorOf = (code) => {
    const c = classOf(code);
    return c ? c.major : code.slice(0, 2);
  };
  // the 大类 of a layer (those its classes belong to), each with its classes: [[major, [codes]]]
  function tree(name) {
    const s = state[name];
    const groups = new Map();
    for (const code of Object.keys(s.counts || {}).sort()) {
      const major = majorOf(code);
      if (!groups.has(major)) groups.set(major, []);
      groups.get(major).push(code);
    }
    return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
  }
  // a 大类's models are on while any of its classes is
  const majorOn = (name, major) => tree(name).some(([m, codes]) => m === major && codes.some((c) => !state[name].hidden.has(c)));

  // --- the models: instanced glTF tiles ---------------------------------------------------------------
  // deck.gl 9.4's Tile3DLayer hands a tile's glTF to one ScenegraphLayer that draws it once per row of its
  // data (one row: the tile), and luma.gl's own EXT_mesh_gpu_instancing is overridden by that layer's
  // instancing: a tile of 6,000 instances would draw one. So each tile is drawn by this layer instead
  // (Tile3DLayer's scenegraph sublayer): one ScenegraphLayer per node (a class's model) whose rows are the
  // node's instances, with their transforms (TRANSLATION, ROTATION, SCALE) and features (EXT_instance_features
  // -> the tile's EXT_structural_metadata property table: id, class_code), so an instance is picked as itself.
  const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  function accessorOf(gltf, ref) {
    return ref === undefined || ref === null ? null : typeof ref === "number" ? gltf.accessors[ref] : ref;
  }
  function component(accessor, i, k, fallback) {
    if (!accessor || !accessor.value) return fallback;
    const size = accessor.components || { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4 }[accessor.type] || 1;
    const v = accessor.value[i * size + k];
    if (v === undefined) return fallback;
    if (!accessor.normalized) return v;
    const a = accessor.value;
    return a instanceof Int8Array ? Math.max(v / 127, -1) : a instanceof Int16Array ? Math.max(v / 32767, -1)
      : a instanceof Uint8Array ? v / 255 : a instanceof Uint16Array ? v / 65535 : v;
  }
  function instanceMatrix(t, r, s, i) {
    const tx = component(t, i, 0, 0), ty = component(t, i, 1, 0), tz = component(t, i, 2, 0);
    let x = component(r, i, 0, 0), y = component(r, i, 1, 0), z = component(r, i, 2, 0), w = component(r, i, 3, 1);
    const norm = Math.hypot(x, y, z, w) || 1;
    x /= norm; y /= norm; z /= norm; w /= norm;
    const sx = component(s, i, 0, 1), sy = component(s, i, 1, 1), sz = component(s, i, 2, 1);
    return [
      (1 - 2 * (y * y + z * z)) * sx, 2 * (x * y + w * z) * sx, 2 * (x * z - w * y) * sx, 0,
      2 * (x * y - w * z) * sy, (1 - 2 * (x * x + z * z)) * sy, 2 * (y * z + w * x) * sy, 0,
      2 * (x * z + w * y) * sz, 2 * (y * z - w * x) * sz, (1 - 2 * (x * x + y * y)) * sz, 0,
      tx, ty, tz, 1,
    ];
  }
  // a tile's nodes, each as a glTF of its own (its model without the instancing) and its instances; once per tile
  function partsOf(gltf) {
    if (gltf.__cimParts) return gltf.__cimParts;
    const table = gltf.extensions && gltf.extensions.EXT_structural_metadata
      && (gltf.extensions.EXT_structural_metadata.propertyTables || [])[0];
    const column = (name) => (table && table.properties && table.properties[name] && table.properties[name].data) || null;
    const ids = column("id"), codes = column("class_code");
    const parts = [];
    for (const node of gltf.nodes || []) {
      if (!node.mesh) continue;
      const ext = node.extensions && node.extensions.EXT_mesh_gpu_instancing;
      const bare = { ...node, extensions: {}, children: [] };  // luma.gl's instancing off: the rows are the instances
      const materials = [...new Set(node.mesh.primitives.map((pr) => pr.material).filter(Boolean))];  // its own only
      const single = { ...gltf, nodes: [bare], meshes: [node.mesh], materials, scenes: [{ id: "scene", nodes: [bare] }],
                       scene: undefined, animations: [], skins: [] };
      const instances = [];
      if (!ext) instances.push({ matrix: IDENTITY, feature: null, id: null, class_code: null });
      else {
        const a = ext.attributes || {};
        const t = accessorOf(gltf, a.TRANSLATION), r = accessorOf(gltf, a.ROTATION), s = accessorOf(gltf, a.SCALE);
        const f = accessorOf(gltf, a._FEATURE_ID_0);
        const n = (t || r || s || { count: 0 }).count;
        for (let i = 0; i < n; i++) {
          const feature = f ? component(f, i, 0, i) : i;
          instances.push({ matrix: instanceMatrix(t, r, s, i), feature, id: ids ? ids[feature] : null,
                           class_code: codes ? codes[feature] : null });
        }
      }
      parts.push({ gltf: single, instances, class_code: instances.length ? instances[0].class_code : null });
    }
    gltf.__cimParts = parts;
    return parts;
  }
  class ComponentTileLayer extends deck.CompositeLayer {
    // the instance picked, kept beside the object (Tile3DLayer makes that the tile)
    getPickingInfo({ info, sourceLayer }) {
      if (info.picked && sourceLayer && sourceLayer.props.data) info.instance = sourceLayer.props.data[info.index] || null;
      return info;
    }
    renderLayers() {
      const { scenegraph: gltf, hidden } = this.props;
      if (!gltf) return [];
      return partsOf(gltf).map((part, k) => new deck.ScenegraphLayer(this.getSubLayerProps({ id: `node-${k}` }), {
        data: part.instances, scenegraph: part.gltf, getPosition: [0, 0, 0], getTransformMatrix: (d) => d.matrix,
        _lighting: this.props._lighting || "pbr", visible: this.props.visible && !(hidden && hidden.has(part.class_code)),
        coordinateSystem: this.props.coordinateSystem, coordinateOrigin: this.props.coordinateOrigin,
        modelMatrix: this.props.modelMatrix, onFirstDraw: this.props.onFirstDraw,
      }));
    }
  }
  ComponentTileLayer.layerName = "ComponentTileLayer";
  // deck.gl 9.4 leaves out of picking the tiles whose content origin is more than a quarter screen from the
  // pointer: an instanced tile holds models over hundreds of metres, so a model near the pointer would not be
  // picked. One draw call per tile is cheap here: every tile on screen is picked.
  class ComponentModelsLayer extends deck.Tile3DLayer {
    filterSubLayer(options) {
      return super.filterSubLayer({ ...options, isPicking: false });
    }
  }
  ComponentModelsLayer.layerName = "ComponentModelsLayer";

  // --- loading -----------------------------------------------------------------------------------
  async function json(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  let catalogueLoading = null;
  function loadCatalogue() {
    catalogueLoading ||= Promise.all([json(`${setup.base}/components`), json(`${setup.base}/components/classes`)])
      .then(([listed, classes]) => {
        comp.layers = listed.layers;
        comp.classes = classes.classes;
        comp.majors = classes.majors;
        catalogue = {
          layers: new Map(listed.layers.map((l) => [l.name, l])),
          classes: new Map(classes.classes.map((c) => [c.code, c])),
          majors: new Map(classes.majors.map((m) => [m.code, m])),
        };
      }, (err) => { catalogueLoading = null; throw err; });  // tried again next time
    return catalogueLoading;
  }

  function load(name) {
    const s = state[name];
    s.loading ||= (async () => {
      s.ready = null;
      await loadCatalogue();
      const counted = await json(`${setup.base}/components/${encodeURIComponent(name)}/counts?level=class`);
      s.counts = Object.fromEntries(counted.counts.map((c) => [c.code, c.count]));
      s.total = counted.total;
      comp.counts[name] = s.counts;
      s.ready = comp.ready[name] = true;
    })().catch((err) => {
      comp.errors.push(`${name}: ${err}`);
      s.ready = comp.ready[name] = false;
      s.loading = null;  // tried again when the layer is next switched on
    });
    return s.loading;
  }

  // --- the map -----------------------------------------------------------------------------------
  const FILTER = new deck.DataFilterExtension({ filterSize: 1 });
  function draw(name) {
    const s = state[name];
    if (!s.ready) return;
    const info = catalogue.layers.get(name);
    const hidden = s.hidden;
    const layers = [];
    // the models of each 大类, from its external tileset: tiles near the ground only, far away the points are the components
    for (const major of (info && info.majors) || []) {
      if (!major.tileset) continue;
      layers.push(new ComponentModelsLayer({
        id: MODELS(name, major.code), data: `${setup.base}${major.tileset}`, loader: loaders.Tiles3DLoader,
        loadOptions: { worker: false, tileset: { maximumScreenSpaceError: 8 } },  // no worker: nothing from a CDN
        pickable: true, visible: majorOn(name, major.code),
        // each tile drawn instance by instance (see ComponentTileLayer); a 小类 off: its models too
        _subLayerProps: { scenegraph: { type: ComponentTileLayer, hidden, version: s.version } },
        onTileLoad: () => recount(name), onTileUnload: () => recount(name),
        onTileError: (tile, url, message) => comp.errors.push(`${url}: ${message}`),
      }));
    }
    layers.push(new deck.MVTLayer({
      id: POINTS(name), data: `${setup.base}/layers/${encodeURIComponent(name)}/tiles/{z}/{x}/{y}.mvt`,
      minZoom: 0, maxZoom: 16, loadOptions: setup.loadOptions, uniqueIdProperty: "id",
      pointType: "circle", getPointRadius: 4, pointRadiusUnits: "pixels", pointRadiusMinPixels: 2,
      filled: true, stroked: true, getLineColor: [15, 20, 30, 200], getLineWidth: 1, lineWidthUnits: "pixels",
      getFillColor: (f) => [...colourOf(f.properties.class_code), 235],
      pickable: true, autoHighlight: true, highlightColor: [255, 220, 0, 200],
      // a 小类 switched off: its points are neither drawn nor picked
      extensions: [FILTER],
      getFilterValue: (f) => (hidden.has(f.properties.class_code) ? 0 : 1), filterRange: [0.5, 1.5],
      updateTriggers: { getFilterValue: s.version },
      onViewportLoad: () => recount(name),
    }));
    if (file && file.name === name) {
      // drawn through the models (its depth test always passes): the selected component is seen whatever covers it
      layers.push(new deck.ScatterplotLayer({
        id: SELECTED(name), data: [file], getPosition: (d) => [d.lon, d.lat], radiusUnits: "pixels", getRadius: 13,
        filled: true, stroked: true, getFillColor: [255, 220, 0, 60], getLineColor: [255, 220, 0, 255],
        lineWidthUnits: "pixels", getLineWidth: 3, parameters: { depthCompare: "always" },
      }));
    }
    api.setOverlay(name, layers);
    recount(name);
  }

  // what is drawn: the classes and 大类 on, the points of the vector tiles on screen whose class is on,
  // and the instances in the 大类 tiles loaded on screen
  const recountTimer = {};
  function recount(name) {
    clearTimeout(recountTimer[name]);
    recountTimer[name] = setTimeout(() => count(name), 150);
  }
  function deckLayer(id) {
    const manager = api.deck.layerManager;
    return manager ? manager.getLayers({ layerIds: [id] }).find((l) => l.id === id) : null;
  }
  function instancesIn(tile, hidden) {
    const gltf = tile.content && tile.content.gltf;
    if (!gltf || !gltf.nodes) return 0;
    return partsOf(gltf).filter((p) => !hidden.has(p.class_code)).reduce((n, p) => n + p.instances.length, 0);
  }
  function count(name) {
    const s = state[name];
    const visible = api.isVisible(name) && !!s.ready;
    const shown = { classes: [], majors: [], points: 0, byClass: {}, instances: 0, byMajor: {} };
    if (s.ready) {
      shown.classes = Object.keys(s.counts).filter((c) => !s.hidden.has(c)).sort();
      shown.majors = tree(name).map(([m]) => m).filter((m) => majorOn(name, m));
    }
    if (visible) {
      const points = deckLayer(POINTS(name));
      const seen = new Set();  // a point near a tile's edge is in its neighbour's buffer too: counted once
      for (const tile of (points && points.state.tileset && points.state.tileset.selectedTiles) || []) {
        const props = tile.content && tile.content.points && tile.content.points.properties;
        for (const p of props || []) {
          if (s.hidden.has(p.class_code)) continue;
          const key = p.id === undefined ? `${tile.id}/${seen.size}` : p.id;
          if (seen.has(key)) continue;
          seen.add(key);
          shown.points += 1;
          shown.byClass[p.class_code] = (shown.byClass[p.class_code] || 0) + 1;
        }
      }
      for (const major of shown.majors) {
        const models = deckLayer(MODELS(name, major));
        const tileset = models && models.state.tileset3d;
        let n = 0;
        for (const tile of (tileset && tileset.selectedTiles) || []) n += instancesIn(tile, s.hidden);
        if (n) shown.byMajor[major] = n;
        shown.instances += n;
      }
    }
    comp.shown[name] = shown;
  }

  // --- the panel: one section per component layer, its class tree -----------------------------------
  function sections() {
    const box = $("components");
    box.hidden = false;
    for (const name of names) {
      if (box.querySelector(`section[data-layer="${CSS.escape(name)}"]`)) continue;
      const section = document.createElement("section");
      section.className = "comp-layer";
      section.dataset.layer = name;
      section.innerHTML = `<h2><label><input type="checkbox" class="comp-toggle"> <span class="comp-title"></span></label>
        <span class="comp-total"></span></h2><div class="comp-body" hidden><p class="comp-status"></p>
        <form class="comp-search"><input type="search" class="comp-id" autocomplete="off" spellcheck="false">
        <button type="submit" class="comp-find"></button></form><p class="comp-msg" role="status"></p>
        <ul class="comp-tree"></ul></div>`;
      section.querySelector(".comp-toggle").addEventListener("change", (e) => api.setLayerVisible(name, e.target.checked));
      section.querySelector(".comp-search").addEventListener("submit", (e) => {
        e.preventDefault();
        const id = section.querySelector(".comp-id").value.trim();
        if (id) find(name, id);
      });
      box.append(section);
    }
  }

  function sectionOf(name) {
    return $("components").querySelector(`section[data-layer="${CSS.escape(name)}"]`);
  }

  function panel(name) {
    const s = state[name];
    const section = sectionOf(name);
    const entry = api.config.entries.find((e) => e.key === name);
    const layerTitle = entry ? entry.title[lang()] : name;
    section.querySelector(".comp-title").textContent = layerTitle === t("components") ? layerTitle
      : `${t("components")} · ${layerTitle}`;
    const visible = api.isVisible(name);
    section.querySelector(".comp-toggle").checked = visible;
    section.querySelector(".comp-body").hidden = !visible;
    section.querySelector(".comp-id").placeholder = t("compSearch");
    section.querySelector(".comp-find").textContent = t("compFind");
    section.querySelector(".comp-status").textContent = s.ready === false ? t("compFailed") : s.ready === null && visible
      ? t("compLoading") : "";
    section.querySelector(".comp-total").textContent = s.ready ? fill(t("compTotal"), { n: num(s.total) }) : "";
    if (!s.ready) { section.querySelector(".comp-tree").replaceChildren(); return; }
    section.querySelector(".comp-tree").replaceChildren(...tree(name).map(([major, codes]) => majorItem(name, major, codes)));
  }

  function majorItem(name, major, codes) {
    const s = state[name];
    const li = document.createElement("li");
    li.className = "comp-major";
    li.dataset.major = major;
    const on = codes.filter((c) => !s.hidden.has(c)).length;
    const total = codes.reduce((n, c) => n + s.counts[c], 0);
    li.innerHTML = `<details><summary><input type="checkbox" class="comp-check"> <span class="comp-name"></span>
      <span class="comp-count"></span></summary><ul class="comp-classes"></ul></details>`;
    const details = li.querySelector("details");
    details.open = s.open.has(major);
    details.addEventListener("toggle", () => { details.open ? s.open.add(major) : s.open.delete(major); });
    const m = catalogue.majors.get(major);
    li.querySelector(".comp-name").textContent = `${major} ${title(m, major)}`;
    li.querySelector(".comp-count").textContent = num(total);
    const check = li.querySelector(".comp-check");
    check.checked = on > 0;
    check.indeterminate = on > 0 && on < codes.length;
    check.title = t("compModels");
    // a whole 大类: its points and its models
    check.addEventListener("change", () => setClasses(name, codes, check.checked));
    li.querySelector(".comp-classes").replaceChildren(...codes.map((code) => {
      const item = document.createElement("li");
      item.className = "comp-class";
      item.dataset.class = code;
      item.innerHTML = `<label><input type="checkbox" class="comp-check"> <span class="swatch"></span>
        <span class="comp-name"></span></label><span class="comp-count"></span>`;
      item.querySelector(".swatch").style.background = rgb(colourOf(code));
      item.querySelector(".comp-name").textContent = `${code} ${title(classOf(code), code)}`;
      item.querySelector(".comp-count").textContent = num(s.counts[code]);
      const box = item.querySelector(".comp-check");
      box.checked = !s.hidden.has(code);
      box.addEventListener("change", () => setClasses(name, [code], box.checked));
      return item;
    }));
    return li;
  }

  function setClasses(name, codes, on) {
    const s = state[name];
    for (const code of codes) (on ? s.hidden.delete(code) : s.hidden.add(code));
    s.version += 1;
    panel(name);
    draw(name);
  }

  // --- one component: its file (一物一档) ---------------------------------------------------------------
  async function select(name, id, { fly = true } = {}) {
    const mine = ++asked;
    if (!names.includes(name)) { say(name, fill(t("compNoLayer"), { name }), false); return null; }
    if (!api.isVisible(name)) api.setLayerVisible(name, true);  // a dashboard's or a search's selection opens the layer
    await load(name);
    if (!state[name].ready) return null;
    let r;
    try {
      r = await fetch(`${setup.base}/components/${encodeURIComponent(name)}/${encodeURIComponent(id)}`);
    } catch (err) { comp.errors.push(`${name}/${id}: ${err}`); say(name, `${t("compFailed")}: ${err}`, false); return null; }
    if (mine !== asked) return null;
    if (r.status === 404) { say(name, fill(t("compNotFound"), { id }), false); return null; }
    if (!r.ok) { comp.errors.push(`${name}/${id}: HTTP ${r.status}`); say(name, `${t("compFailed")}: HTTP ${r.status}`, false); return null; }
    const found = await r.json();
    if (mine !== asked) return null;
    const before = file && file.name;
    file = comp.selected = { ...found, name: found.name || name };
    say(name, "", true);
    showFile();
    if (before && before !== name) draw(before);  // its highlight goes
    draw(name);
    if (fly) {
      const d = 0.0004;  // some 40 m around it: the camera comes down to where the models are drawn
      api.flyTo([file.lon - d, file.lat - d, file.lon + d, file.lat + d]);
    }
    api.notifyParent("cim:components.selected", { name, id: file.id, class_code: file.class && file.class.code });
    return file;
  }

  function find(name, id) {
    say(name, t("compFinding"), true);
    return select(name, id);
  }

  function say(name, text, ok) {
    comp.message = text;
    const section = names.includes(name) ? sectionOf(name) : null;
    if (!section) return;
    const msg = section.querySelector(".comp-msg");
    msg.textContent = text;
    msg.className = `comp-msg ${ok ? "ok" : "error"}`;
  }

  function unselect() {
    asked += 1;
    const name = file && file.name;
    file = comp.selected = null;
    showFile();
    if (name) draw(name);
  }

  const row = (k, v) => `<tr><th>${esc(k)}</th><td>${esc(v === null || v === undefined || v === "" ? "—" : v)}</td></tr>`;
  const fieldLabel = (k) => (api.config.fields[k] ? api.config.fields[k][lang()] : k);

  function sensorItem(x) {
    const st = x.state;
    const status = st ? (t("status_" + st.status) || st.status) : t("compNoState");
    const reading = st ? [status, st.value === null || st.value === undefined ? "" : `${t("value")} ${num(st.value, 3)}`,
      when(st.ts)].filter(Boolean).join(" · ") : status;
    const alarms = (x.alarms || []).map((a) => `<li class="${a.cleared_at ? "cleared" : "open"}">${esc([a.severity, a.kind,
      a.message, when(a.raised_at), a.cleared_at ? `${t("compCleared")} ${when(a.cleared_at)}` : t("compOpenAlarm")]
      .filter(Boolean).join(" · "))}</li>`).join("");
    return `<li class="comp-sensor${st ? ` status-${esc(st.status)}` : ""}" data-sensor="${esc(x.id)}">
      <div class="head"><span class="sid">${esc(x.id)}</span> <span class="cat">${esc(x.category_name || x.category)}</span>
      <span class="link">${esc(x.linked ? t("compLinked") : fill(t("compNearby"), { d: num(x.distance_m, 1) }))}</span></div>
      <div class="reading">${esc(reading)}</div>
      ${alarms ? `<details><summary>${esc(t("compAlarms"))} (${x.alarms.length})</summary><ul>${alarms}</ul></details>` : ""}</li>`;
  }

  function ticketItem(x) {
    const history = (x.history || []).map((h) => `<li>${esc(t("compStage_" + h.stage) || h.stage)} · ${esc(when(h.at))}</li>`).join("");
    return `<li class="comp-ticket" data-ticket="${esc(x.id)}">
      <div class="head"><span class="tid">${esc(x.id)}</span> <span class="cat">${esc(x.category)}</span>
      <span class="link">${esc(x.linked ? t("compLinked") : fill(t("compNearby"), { d: num(x.distance_m, 1) }))}</span></div>
      <div class="reading">${esc([x.status, x.department, x.channel && `${t("compChannel")} ${x.channel}`].filter(Boolean).join(" · "))}</div>
      ${history ? `<ol class="history">${history}</ol>` : ""}</li>`;
  }

  // the attributes the file's head shows already
  const SHOWN = new Set(["id", "fid", "class_code", "class_name", "status", "department", "street", "community", "grid",
                         "heading"]);
  function showFile() {
    const box = $("component-file");
    if (!file) { box.hidden = true; box.replaceChildren(); comp.fileShown = false; return; }
    const f = file;
    const cls = f.class || {};
    const major = catalogue && catalogue.majors.get(cls.major);
    const attributes = Object.entries(f.attributes || {}).filter(([k, v]) => v !== null && v !== "" && !SHOWN.has(k));
    const sensors = f.sensors || [];
    const tickets = f.tickets || [];
    const none = `<li class="none">${esc(t("compNone"))}</li>`;
    box.innerHTML = `<header><h1><span class="swatch" style="background:${rgb(cls.colour || GREY)}"></span>
      <span class="comp-class-name"></span></h1><button type="button" class="close"></button></header>
      <p class="comp-file-id"></p>
      <table class="comp-facts">${row(t("compId"), f.id)}${row(t("compClass"), `${cls.code || ""} ${title(cls, "")}`)}
      ${row(t("compMajor"), major ? `${major.code} ${title(major, "")}` : cls.major)}${row(t("compStatus"), f.status)}
      ${row(t("compDepartment"), f.department)}${row(t("street"), f.street)}${row(t("community"), f.community)}
      ${row(t("grid"), f.grid)}${row(t("compHeading"), f.heading === null || f.heading === undefined ? null : `${num(f.heading, 1)}°`)}
      ${row(t("compPosition"), `${Number(f.lon).toFixed(6)}, ${Number(f.lat).toFixed(6)}`)}</table>
      ${attributes.length ? `<h2>${esc(t("compAttributes"))}</h2><table class="comp-attributes">${attributes
        .map(([k, v]) => row(fieldLabel(k), typeof v === "object" ? JSON.stringify(v) : v)).join("")}</table>` : ""}
      <h2>${esc(t("compSensors"))} (${sensors.length})</h2><ul class="comp-sensors">${sensors.map(sensorItem).join("") || none}</ul>
      <h2>${esc(t("compTickets"))} (${tickets.length})</h2><ul class="comp-tickets">${tickets.map(ticketItem).join("") || none}</ul>
      <p class="comp-radius">${esc(fill(t("compWithin"), { r: num(f.radius_m) }))}</p>`;
    box.querySelector(".comp-class-name").textContent = title(cls, cls.code || "");
    box.querySelector(".comp-file-id").textContent = f.id;
    box.querySelector(".close").textContent = t("close");
    box.querySelector(".close").addEventListener("click", unselect);
    box.hidden = !api.isVisible(f.name);
    comp.fileShown = !box.hidden;
  }

  // --- map picking and tooltips --------------------------------------------------------------------
  const mine = (id) => !!id && id.startsWith("components:");
  const layerOf = (id) => id.split(":")[1];
  const baseTooltip = api.deck.props.getTooltip;
  const baseClick = api.deck.props.onClick;
  // the instance of a model under the pointer (see ComponentTileLayer.getPickingInfo)
  function instanceOf(info) {
    const id = info.layer && info.layer.id;
    return mine(id) && id.includes(":models:") && info.instance && info.instance.id ? info.instance : null;
  }
  function tooltip(info) {
    const id = info.layer && info.layer.id;
    const instance = instanceOf(info);
    const p = instance || (mine(id) && id.includes(":points") && info.object && info.object.properties);
    if (!p) return null;
    const c = classOf(p.class_code);
    return { className: "cim-tooltip", html: `<div class="tt-title"><span class="swatch" style="background:${
      rgb(colourOf(p.class_code))}"></span> ${esc(c ? title(c, p.class_code) : p.class_name || p.class_code)}</div><table>` +
      row(t("compId"), p.id) + (instance ? "" : row(t("compStatus"), p.status) + row(t("street"), p.street) +
      row(t("grid"), p.grid)) + "</table>" };
  }
  // the component clicked: an instance of a model, a point, or the point near the click of a component layer that is on
  function pick(info) {
    const id = info.layer && info.layer.id;
    const instance = instanceOf(info);
    if (instance) return { name: layerOf(id), id: String(instance.id) };
    const point = (hit) => hit && hit.object && hit.object.properties && hit.object.properties.id !== undefined
      ? { name: layerOf(hit.layer.id), id: String(hit.object.properties.id) } : null;
    if (mine(id) && id.includes(":points")) return point(info);
    const layerIds = names.filter((n) => api.isVisible(n) && state[n].ready).map(POINTS);
    if (!layerIds.length) return null;
    return point(api.deck.pickObject({ x: info.x, y: info.y, radius: 8, layerIds }));
  }
  api.deck.setProps({
    getTooltip: (info) => tooltip(info) || (mine(info.layer && info.layer.id) ? null : baseTooltip ? baseTooltip(info) : null),
    onClick: (info, event) => {
      if (baseClick) baseClick(info, event);
      const id = info.layer && info.layer.id;
      if (id && id.startsWith("live-")) return;  // live points have their own
      const hit = pick(info);
      if (hit) select(hit.name, hit.id, { fly: false });
    },
  });

  // --- wiring --------------------------------------------------------------------------------------
  async function open(name) {
    panel(name);
    await load(name);
    panel(name);
    draw(name);
    showFile();
  }
  function close(name) {
    panel(name);
    if (file && file.name === name) showFile();
    count(name);
  }
  sections();
  api.onVisibility.push((key, visible) => { if (names.includes(key)) (visible ? open(key) : close(key)); });
  api.onLanguage.push(() => { for (const name of names) panel(name); showFile(); });
  api.onMessage.push((m) => {
    if (m.type === "cim:components.select" && m.id) select(m.name ? String(m.name) : names[0], String(m.id));
  });
  window.cimComponents = { select, find, open, unselect, setClasses, count };
  for (const name of names) (api.isVisible(name) ? open(name) : panel(name));
})();
