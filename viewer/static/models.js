// Models replace the white model where they stand (模型替换白模): a BIM model or an oblique-photography
// production that is on hides the white model (the LOD1 buildings: every entry with a pick layer, its
// extruded footprints "NAME__pick" and its tileset "tileset:NAME") under its footprint, so a detailed
// model never sits inside a LOD1 box. A switch (模型, top right) shows both; the URL keeps it
// (whitemodel=all), and a dashboard may send {type: "cim:models.showBoth", on}.
//
// The footprints: a BIM model's outline layer (NAME_outline, the union of its elements' footprints; the
// model's extent without one), an oblique production's folder footprints (the production's extent,
// kind "production", without any): GET /layers/NAME/items, once per model. Under a BIM model the white
// model's buildings go whole (not cut open along the outline): each white-model building that a quarter
// of its own footprint, or a quarter of the model's, overlaps (GET /layers/WHITE/items?bbox=the outline's)
// joins the mask, a little grown so that its walls, which stand on its outline, go with it. An oblique
// production's mesh ends where its photographs do: the buildings across its edge are cut there, as the
// mesh cuts them.
//
// The hiding: deck.gl's MaskExtension. The footprints are one GeoJsonLayer of operation "mask" (an
// decoration: never drawn itself); the white model's layers get the extension with maskInverted, through
// the viewer's api.layerTransforms: their fragments inside the mask are discarded, in the picking pass
// too (a hidden building cannot be picked). maskByInstance is off: the tileset's meshes are instanced
// (one instance per tile) and would otherwise go or stay by their tile's origin.
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: footprints (the model footprints in the mask), buildings (white-model buildings
  // hidden whole), models (the keys of the models masking), masked (the ids of the layers on, drawn masked),
  // showBoth, errors, ready (the first footprints are in)
  const M = { footprints: 0, buildings: 0, models: [], masked: [], showBoth: false, errors: [], ready: false };
  window.__cimModels = M;
  if (!api) return;
  const TEXT = {
    zh: { label: "模型", showBoth: "显示白模", hideOverlap: "隐藏白模重叠部分" },
    en: { label: "Model", showBoth: "Show the white model too", hideOverlap: "Hide the white model under the models" },
  };
  const text = (key) => TEXT[document.documentElement.lang === "en" ? "en" : "zh"][key];
  const base = (api.config.rasters && api.config.rasters.base) || "";
  const MASK_ID = "models:mask";
  const BUSY = "models";
  const PICK = "__pick";
  const SHARE = 0.25;  // a white-model building goes whole when this share of its footprint, or of the model's, is under it
  const GROW_M = 0.8;  // and its footprint grown by this much: its walls stand on its outline

  const entries = api.config.entries || [];
  const keys = new Set(entries.map((e) => e.key));
  const components = new Set((api.config.components && api.config.components.layers) || []);
  // the white model: the entries drawn with a pick layer of extruded footprints (buildings, ...)
  const whites = entries.filter((e) => e.ids.includes(e.key + PICK));
  const whiteIds = new Set(whites.flatMap((e) => e.ids));
  // the models: BIM models (their storeys), and the other tilesets of a layer, oblique if their entry's kind says so
  const bims = entries.filter((e) => e.bim);
  const others = entries.filter((e) => e.tileset && !e.bim && e.count !== null && !whites.includes(e) && !components.has(e.key));

  const MASK = deck.MaskExtension ? new deck.MaskExtension() : null;
  let models = [];  // [{key, kind: "bim" | "oblique", entry}]
  let mask = null;  // the mask's features, null: nothing hidden
  const footprintsOf = new Map();  // model key -> promise of its footprint features
  const underOf = new Map();  // model key + white key -> promise of the white buildings under it (grown footprints)

  async function getJson(path) {
    const r = await fetch(`${base}${path}`);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }
  const failed = (err) => { M.errors.push(String(err && err.message || err)); return []; };

  // --- geometry (lon/lat; areas in degrees² scaled by cos(latitude): only their ratios are used) ---------------
  const polygonsOf = (geometry) => {
    if (!geometry) return [];
    if (geometry.type === "Polygon") return [geometry.coordinates];
    if (geometry.type === "MultiPolygon") return geometry.coordinates;
    return [];
  };
  const ringArea = (ring) => {
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
    return Math.abs(a / 2);
  };
  const area = (polygons) => polygons.reduce((sum, [outer, ...holes]) =>
    sum + ringArea(outer) - holes.reduce((h, ring) => h + ringArea(ring), 0), 0);
  const inRing = (x, y, ring) => {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  };
  const inside = (x, y, polygons) => polygons.some(([outer, ...holes]) => inRing(x, y, outer) && !holes.some((h) => inRing(x, y, h)));
  const bboxOf = (polygons) => {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [outer] of polygons) for (const [x, y] of outer) {
      b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y); b[2] = Math.max(b[2], x); b[3] = Math.max(b[3], y);
    }
    return b;
  };
  // the area two footprints share, by a grid of samples over their common box
  function overlap(a, b, n = 32) {
    const [ba, bb] = [bboxOf(a), bboxOf(b)];
    const box = [Math.max(ba[0], bb[0]), Math.max(ba[1], bb[1]), Math.min(ba[2], bb[2]), Math.min(ba[3], bb[3])];
    if (!(box[0] < box[2] && box[1] < box[3])) return 0;
    const dx = (box[2] - box[0]) / n, dy = (box[3] - box[1]) / n;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const x = box[0] + (i + 0.5) * dx, y = box[1] + (j + 0.5) * dy;
        if (inside(x, y, a) && inside(x, y, b)) hits += 1;
      }
    }
    return hits * dx * dy;
  }
  // a footprint grown by about `metres`: each vertex moved that far from its ring's centre
  function grown(polygons, metres) {
    return polygons.map((rings) => rings.map((ring, k) => {
      const n = ring.length - 1 || 1;
      const cx = ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n;
      const cy = ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n;
      const mx = 111320 * Math.cos((cy * Math.PI) / 180), my = 110540;  // metres per degree
      const sign = k === 0 ? 1 : -1;  // a hole shrinks
      return ring.map(([x, y]) => {
        const ex = (x - cx) * mx, ey = (y - cy) * my, d = Math.hypot(ex, ey);
        const f = d > 0 ? Math.max(0, 1 + (sign * metres) / d) : 1;
        return [cx + (x - cx) * f, cy + (y - cy) * f];
      });
    }));
  }
  const feature = (polygons, properties) => ({ type: "Feature", properties, geometry: { type: "MultiPolygon", coordinates: polygons } });

  // --- the footprints --------------------------------------------------------------------------------------------
  function footprints(model) {
    if (!footprintsOf.has(model.key)) {
      let promise;
      if (model.kind === "bim" && keys.has(`${model.key}_outline`)) {
        promise = getJson(`/layers/${encodeURIComponent(model.key + "_outline")}/items?limit=100`).then((fc) => fc.features);
      } else if (model.kind === "bim") {  // no outline layer: the elements' extent
        const [w, s, e, n] = model.entry.bbox;
        promise = Promise.resolve([feature([[[[w, s], [e, s], [e, n], [w, n], [w, s]]]], {})]);
      } else {
        promise = getJson(`/layers/${encodeURIComponent(model.key)}/items?limit=10000`).then((fc) => {
          const folders = fc.features.filter((f) => f.properties.kind === "folder");
          return folders.length ? folders : fc.features.filter((f) => f.properties.kind === "production");
        });
      }
      footprintsOf.set(model.key, promise.then((list) => list.filter((f) => polygonsOf(f.geometry).length))
        .catch((err) => { footprintsOf.delete(model.key); return failed(err); }));
    }
    return footprintsOf.get(model.key);
  }

  // the white model's buildings (of one white entry) that stand under a BIM model: their grown footprints
  function under(model, white, features) {
    const key = `${model.key}\n${white.key}`;
    if (!underOf.has(key)) {
      const shapes = features.map((f) => polygonsOf(f.geometry));
      const all = shapes.flat();
      const b = bboxOf(all);
      const modelArea = area(all);
      const url = `/layers/${encodeURIComponent(white.key)}/items?bbox=${b.map((v) => v.toFixed(7)).join(",")}&limit=1000`;
      underOf.set(key, getJson(url).then((fc) => fc.features.filter((f) => {
        const polygons = polygonsOf(f.geometry);
        const own = area(polygons);
        const shared = overlap(polygons, all);
        return own > 0 && (shared >= SHARE * own || shared >= SHARE * modelArea);
      }).map((f) => feature(grown(polygonsOf(f.geometry), GROW_M), { layer: white.key, fid: f.id })))
        .catch((err) => { underOf.delete(key); return failed(err); }));
    }
    return underOf.get(key);
  }

  // --- what is drawn --------------------------------------------------------------------------------------------
  const maskProps = { maskId: MASK_ID, maskInverted: true, maskByInstance: false };
  // a white model's 3D Tiles once masked: their tiles' sublayers made again as the mask comes and goes (api.retile:
  // deck.gl builds a tile's sublayer and its glTF models once, with the extensions they had then)
  const retiled = new Set();
  api.layerTransforms.push((layer) => {
    if (!whiteIds.has(layer.id)) return layer;
    const hiding = Boolean(mask && !M.showBoth && MASK);
    const out = hiding ? layer.clone({ extensions: [...(layer.props.extensions || []), MASK], ...maskProps }) : layer;
    if (!(deck.Tile3DLayer && layer instanceof deck.Tile3DLayer) || !(hiding || retiled.has(layer.id))) return out;
    retiled.add(layer.id);
    return api.retile(out, "mask", hiding ? "on" : "off");
  });

  let round = 0;
  async function update() {
    const mine = ++round;
    const on = models.filter((m) => api.isVisible(m.key));
    const found = await Promise.all(on.map(async (m) => {
      const features = await footprints(m);
      const buildings = m.kind === "bim" && features.length
        ? (await Promise.all(whites.filter((w) => api.isVisible(w.key)).map((w) => under(m, w, features)))).flat() : [];
      return { key: m.key, features, buildings };
    }));
    if (mine !== round) return;  // a newer update is on its way
    const features = found.flatMap((f) => f.features);
    const buildings = found.flatMap((f) => f.buildings);
    M.footprints = features.length;
    M.buildings = buildings.length;
    M.models = found.filter((f) => f.features.length).map((f) => f.key);
    mask = features.length ? [...features, ...buildings] : null;
    draw();
  }

  function draw() {
    const hiding = mask && !M.showBoth && MASK;
    api.setDecoration("models", hiding ? [new deck.GeoJsonLayer({
      id: MASK_ID, data: { type: "FeatureCollection", features: mask }, operation: "mask",
      filled: true, stroked: false, getFillColor: [255, 255, 255, 255], pickable: false,
    })] : []);  // setDecoration draws the layers again: the transform reads `mask` and M.showBoth
    M.masked = (api.deck.props.layers || []).filter((l) => l.props.visible && l.props.maskId === MASK_ID).map((l) => l.id);
    placeButton();
  }

  // --- the switch -------------------------------------------------------------------------------------------------
  let button = null;
  function makeButton() {
    const slot = api.slot("top-right");
    if (!slot || !whites.length || !(bims.length || others.length)) return;
    button = document.createElement("button");
    button.type = "button";
    button.id = "models-switch";
    button.className = "cim-tool";  // the look of the map tools' buttons (tools.css)
    button.addEventListener("click", () => setShowBoth(!M.showBoth));
    slot.append(button);
    placeButton();
  }
  function placeButton() {
    if (!button) return;
    button.textContent = text("label");
    button.title = M.showBoth ? text("hideOverlap") : text("showBoth");
    button.setAttribute("aria-label", button.title);
    button.setAttribute("aria-pressed", String(M.showBoth));
    button.classList.toggle("active", M.showBoth);
  }
  function setShowBoth(on) {
    M.showBoth = !!on;
    draw();
    api.writeUrl();
  }

  // --- start --------------------------------------------------------------------------------------------------------
  M.showBoth = api.initialHash.get("whitemodel") === "all";
  api.onWriteUrl.push((p) => { if (M.showBoth) p.set("whitemodel", "all"); });
  api.onLanguage.push(placeButton);
  api.onMessage.push((m) => { if (m.type === "cim:models.showBoth") setShowBoth(!!m.on); });
  if (!MASK) M.errors.push("deck.gl has no MaskExtension: the white model is not hidden under the models");
  makeButton();

  async function start() {
    models = bims.map((entry) => ({ key: entry.key, kind: "bim", entry }));
    for (const entry of others) if (entry.kind === "oblique") models.push({ key: entry.key, kind: "oblique", entry });
    const watched = new Set([...models.map((m) => m.key), ...whites.map((w) => w.key)]);
    api.onVisibility.push((key) => { if (watched.has(key)) update(); });  // a white model on: its buildings under the models
    if (whites.length) await update();
  }
  api.busy.add(BUSY);
  start().catch(failed).finally(() => {
    M.ready = true;
    api.busy.delete(BUSY);
    api.redraw();  // a frame more: the page's done check runs after each
  });
})();
