// Imagery and terrain (影像与地形) on the viewer: the newest orthophoto (DOM) is the basemap under
// every layer (影像底图, its epoch shown; another epoch or another DOM chosen in the panel), the newest
// terrain model (DEM) is deck.gl's TerrainLayer with the basemap draped on it (地形: the flat basemap
// goes while the terrain is on), and the swipe (卷帘对比) shows two epochs (or two DOMs) side by side,
// left and right of a divider dragged across the map.
// One request at opening (GET /rasters); with no raster the group stays hidden and nothing is drawn.
// The basemap and the terrain are layers of the viewer's: "basemap" and "terrain" in the URL's layers=
// (a page opened without layers= has both on when the server says so, CIM_VIEWER_GROUND, the default: the
// models stand on the terrain; otherwise they are off until switched on), and
// a dashboard's {type: "cim:setLayerVisible", key: "basemap" | "terrain"} switches them. The URL also
// keeps which: basemap=NAME[@EPOCH] (a DOM, one of its epochs), terrain=NAME (a DEM), and the swipe:
// swipe=NAME@EPOCH,NAME@EPOCH[,X] (left, right; X: the divider's place, 0-1 of the map's width);
// rasterOpacity=0-1. A dashboard may send {type: "cim:rasters.set", basemap, epoch, terrain, swipe,
// opacity} (see set()).
//
// The swipe is swipe.js' (api.swipe: its screen-space extension, exact at any bearing and pitch, on flat
// tiles and on terrain meshes alike, and the one divider of the page, shared with the layer swipe: starting
// either swipe ends the other).
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: rasters (GET /rasters; null until loaded), basemap {name, epoch, on, loadedTiles},
  // terrain {name, epoch, on, loadedTiles}, swipe {on, x (CSS pixels from the map's left), fraction, left, right
  // (NAME@EPOCH), loadedTiles}, errors
  const R = {
    rasters: null,
    basemap: { name: null, epoch: null, on: false, loadedTiles: 0 },
    terrain: { name: null, epoch: null, on: false, loadedTiles: 0 },
    swipe: { on: false, x: null, fraction: 0.5, left: null, right: null, loadedTiles: 0 },
    errors: [],
  };
  window.__cimRasters = R;
  if (!api) return;
  const { t } = api;
  const setup = api.config.rasters || { base: "", elevationDecoder: null, loadOptions: {} };
  const KEY = "rasters";  // the underlay's key, and the page's busy flag while GET /rasters is out
  const BASEMAP = "basemap", TERRAIN = "terrain";  // their keys among the viewer's layers (URL: layers=)
  const $ = (id) => document.getElementById(id);
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k]);
  const locale = () => (document.documentElement.lang === "en" ? "en" : "zh-CN");
  const refKey = (ref) => (ref ? `${ref.name}@${ref.epoch}` : null);
  const parseRef = (text) => {
    const [name, epoch] = String(text || "").split("@");
    return name ? { name, epoch: epoch || null } : null;
  };
  const absolute = (url) => (url && url.startsWith("/") ? `${setup.base}${url}` : url);

  let doms = [];  // GET /rasters' DOMs, newest first
  let dems = [];
  const records = new Map();  // NAME@EPOCH -> that epoch's record (GET /rasters/NAME?epoch=), or its promise
  // which: null: the defaults (the newest DOM, the newest DEM, the swipe's sides); on or off: the viewer's layers.
  // The divider's place is swipe.js' (api.swipe.x, 0-1 of the map's width)
  const st = { dom: null, dem: null, swipe: false, left: null, right: null, opacity: 1 };
  const swipe = api.swipe;
  const OWNER = "rasters";  // this swipe, among swipe.js' (the layer swipe is the other)
  const basemapOn = () => api.isVisible(BASEMAP);
  const terrainOn = () => api.isVisible(TERRAIN);

  // --- the catalogue ---------------------------------------------------------------------------------------
  const newestFirst = (a, b) => b.epoch.localeCompare(a.epoch) || String(b.imported_at || "").localeCompare(String(a.imported_at || ""));
  const byName = (list, name) => list.find((r) => r.name === name) || null;
  // every epoch of every DOM: the basemap's choices and the swipe's sides
  const choices = () => doms.flatMap((r) => r.epochs.map((epoch) => ({ name: r.name, epoch, title: r.title })));
  // a ref made whole: a DOM (or DEM) that exists, and one of its epochs (its newest when none or unknown)
  function resolve(ref, list) {
    const r = ref && byName(list, ref.name);
    if (!r) return null;
    return { name: r.name, epoch: ref.epoch && r.epochs.includes(ref.epoch) ? ref.epoch : r.epoch };
  }
  const domRef = () => resolve(st.dom, doms) || (doms[0] ? { name: doms[0].name, epoch: doms[0].epoch } : null);
  const demRef = () => resolve(st.dem, dems) || (dems[0] ? { name: dems[0].name, epoch: dems[0].epoch } : null);

  async function record(ref) {
    if (!ref) return null;
    const key = refKey(ref);
    const listed = byName([...doms, ...dems], ref.name);
    if (listed && listed.epoch === ref.epoch) return listed;  // the newest: as listed
    if (!records.has(key)) {
      const url = `${setup.base}/rasters/${encodeURIComponent(ref.name)}?epoch=${encodeURIComponent(ref.epoch)}`;
      records.set(key, fetch(url).then((r) => {
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        return r.json();
      }).catch((err) => { records.delete(key); R.errors.push(String(err)); return null; }));
    }
    return records.get(key);
  }

  // --- the layers --------------------------------------------------------------------------------------------
  // the zoom whose ground resolution first reaches the raster's pixel (and one more: tiles stay sharp)
  function nativeZoom(info) {
    const lat = (info.bbox[1] + info.bbox[3]) / 2;
    const metres = 156543.03392 * Math.cos((lat * Math.PI) / 180);
    const z = Math.ceil(Math.log2(metres / Math.max(info.resolution || 1, 0.05)));
    return Math.max(0, Math.min(22, z + 1));
  }

  // an imagery tile: none outside the raster (204), an ImageBitmap otherwise (no loaders.gl, no worker)
  async function loadImage({ url, signal }) {
    const r = await fetch(url, { signal });
    if (r.status === 204) return null;
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return createImageBitmap(await r.blob());
  }
  function bitmap(props) {
    if (!props.data) return null;
    const [[west, south], [east, north]] = props.tile.boundingBox;
    return new deck.BitmapLayer(props, { data: null, image: props.data, bounds: [west, south, east, north] });
  }
  function tileError(err) {
    if (err && err.name === "AbortError") return;  // a tile the view left behind
    R.errors.push(String(err && err.message || err));
  }
  const counter = (what) => (tile) => { if (tile.content) what.loadedTiles += 1; };

  function imageryLayer(id, info, side, counted) {
    return new deck.TileLayer({
      id, data: absolute(info.tiles.xyz), extent: info.bbox, minZoom: 0, maxZoom: nativeZoom(info), tileSize: 256,
      getTileData: loadImage, renderSubLayers: bitmap, onTileLoad: counter(counted), onTileError: tileError,
      opacity: st.opacity, extensions: side ? [swipe.extension(side)] : [],
    });
  }

  // the terrain's texture: the imagery tile on the bare ground's colour (a tile the orthophoto covers in part
  // would leave holes in the terrain where it is transparent); none outside the orthophoto: the mesh's colour
  const GROUND = [235, 235, 230];
  const defaultFetch = deck.Layer.defaultProps.fetch.value;
  function terrainFetch(url, context) {
    if (context.propName !== "texture") return defaultFetch(url, context);  // the heights: the terrain worker
    return loadImage({ url, signal: context.signal }).then((image) => {
      if (!image) return null;
      const canvas = new OffscreenCanvas(image.width, image.height);
      const g = canvas.getContext("2d");
      g.fillStyle = `rgb(${GROUND.join(",")})`;
      g.fillRect(0, 0, image.width, image.height);
      g.drawImage(image, 0, 0);
      image.close();
      return canvas.transferToImageBitmap();
    });
  }

  // the viewer's other layers on the terrain (but the 3D Tiles, at their own heights): the vector layers draped
  // on it, extruded footprints and points lifted by its height (deck.gl's experimental TerrainExtension).
  // Once on, it stays on the layers, off when the terrain is: deck.gl 9.4 keeps a layer's draw mode in its state
  // after the extension is taken off, and its terrain effect (there for good once added) would then skip it.
  class Drape extends deck._TerrainExtension {
    updateState(params, extension) {
      if (extension.opts.on) super.updateState(params, extension);
      else this.state.terrainDrawMode = undefined;  // drawn as it is, flat
    }
  }
  Drape.extensionName = "TerrainExtension";
  const DRAPE = { on: new Drape({ on: true }), off: new Drape({ on: false }) };
  let draping = false;  // the terrain has been on: the layers have the extension

  function terrainLayer(id, dem, dom, side, counted) {
    return new deck.TerrainLayer({
      // the terrain the others are draped on (not with the swipe: its two halves would be two terrains)
      operation: side ? "draw" : "terrain+draw",
      id, elevationData: absolute(dem.tiles.terrain_rgb), texture: dom ? absolute(dom.tiles.xyz) : null,
      elevationDecoder: setup.elevationDecoder, extent: dem.bbox, minZoom: 0,
      // the draped imagery's zoom (sharp at close range), the DEM's own when bare
      maxZoom: Math.min(18, Math.max(nativeZoom(dem), dom ? nativeZoom(dom) : 0)), meshMaxError: 2,
      // pickable: a point picked on it (the measure tools) has its height; its mesh picks as no feature
      pickable: true, color: GROUND,
      fetch: terrainFetch, loadOptions: setup.loadOptions,  // the terrain worker: this server's, no CDN
      onTileLoad: counter(counted), onTileError: tileError, extensions: side ? [swipe.extension(side)] : [],
    });
  }

  // --- the swipe: swipe.js' divider, with each side's epoch ------------------------------------------------------
  function placeDivider() {
    const on = R.swipe.on;
    R.swipe.fraction = swipe.x;
    R.swipe.x = on ? swipe.x * $("map").clientWidth : null;
    if (!on || swipe.active !== OWNER) return;  // the layer swipe has the divider (this one is ending)
    // each side's epoch, and its DOM when the two are not the same
    const [left, right] = [parseRef(R.swipe.left), parseRef(R.swipe.right)];
    const two = left && right && left.name !== right.name;
    const label = (ref) => {
      const r = ref && byName(doms, ref.name);
      return ref ? `${two && r ? `${titleOf(r)} ` : ""}${ref.epoch}` : "";
    };
    swipe.showDivider(label(left), label(right));
  }

  // --- drawing -------------------------------------------------------------------------------------------------
  // the swipe's sides by default: the basemap's previous epoch on the left and the basemap on the right,
  // or (a DOM of one epoch) the next DOM on the left
  function swipeDefaults() {
    const right = domRef();
    const all = choices();
    const older = all.find((c) => c.name === right.name && c.epoch < right.epoch);
    const other = all.find((c) => refKey(c) !== refKey(right));
    const left = older || other;
    return left ? [{ name: left.name, epoch: left.epoch }, right] : null;
  }
  const swipeable = () => choices().length > 1;

  let drawing = 0;
  async function draw() {
    const mine = ++drawing;
    const base = doms.length ? domRef() : null;
    const ground = terrainOn() && dems.length ? demRef() : null;
    let sides = null;
    if (st.swipe && swipeable()) {
      const [dl, dr] = swipeDefaults();
      sides = [resolve(st.left, doms) || dl, resolve(st.right, doms) || dr];
    }
    const [dom, dem, left, right] = await Promise.all([record(base), record(ground),
      record(sides && sides[0]), record(sides && sides[1])]);
    if (mine !== drawing) return;  // a newer choice is being drawn
    const swiping = !!(left && right);
    const layers = [];
    if (dem && swiping) {
      layers.push(terrainLayer("rasters:terrain:left", dem, left, "left", R.terrain),
                  terrainLayer("rasters:terrain:right", dem, right, "right", R.terrain));
    } else if (dem) {
      layers.push(terrainLayer("rasters:terrain", dem, basemapOn() ? dom : null, null, R.terrain));
    } else if (swiping) {
      layers.push(imageryLayer("rasters:swipe:left", left, "left", R.swipe),
                  imageryLayer("rasters:swipe:right", right, "right", R.swipe));
    } else if (dom && basemapOn()) {
      layers.push(imageryLayer("rasters:basemap", dom, null, R.basemap));
    }
    Object.assign(R.basemap, { name: base && base.name, epoch: base && base.epoch, on: !!(dom && basemapOn()) });
    Object.assign(R.terrain, { name: dem && dem.name, epoch: dem && dem.epoch, on: !!dem });
    Object.assign(R.swipe, { on: swiping, left: swiping ? refKey(sides[0]) : null, right: swiping ? refKey(sides[1]) : null });
    if (swiping) swipe.begin(OWNER, () => set({ swipe: false }));  // the layer swipe, if on, ends
    else swipe.end(OWNER);
    draping ||= !!(dem && !swiping);
    api.setDrape(dem && !swiping ? DRAPE.on : draping ? DRAPE.off : null);
    api.setUnderlay(KEY, layers);
    placeDivider();
    panel();
    api.writeUrl();
  }

  // --- the panel: the basemap (its epoch), the terrain, the swipe ------------------------------------------------
  // a raster's title, unless it names an epoch itself (the importer's default title does): then its name
  const titleOf = (r) => (r.title && !/\d{4}-\d{2}-\d{2}/.test(r.title) ? r.title : r.name);
  function option(c) {
    return new Option(doms.length > 1 ? `${titleOf(c)} · ${c.epoch}` : c.epoch, refKey(c));
  }
  function panel() {
    const box = $("rasters");
    if (!box) return;
    if (!doms.length && !dems.length) { box.hidden = true; return; }
    box.hidden = false;
    if (!box.firstChild) build(box);
    box.querySelector("h3").textContent = t("rasters");
    const base = doms.length ? domRef() : null;
    const all = choices();
    // the basemap
    const b = box.querySelector('[data-raster="basemap"]');
    b.hidden = !base;
    if (base) {
      const info = byName(doms, base.name);
      b.querySelector(".toggle").checked = basemapOn();
      b.querySelector(".name").textContent = `${t("imagery")} ${base.epoch}`;
      b.querySelector(".name").title = `${t("basemap")} · ${titleOf(info)}`;
      b.querySelector(".count").textContent = resolution(info);
      const epoch = b.querySelector(".epoch");
      epoch.replaceChildren(...all.map(option));
      epoch.value = refKey(base);
      epoch.hidden = all.length < 2;
      b.querySelector(".op-label").textContent = t("opacity");
      b.querySelector(".opacity").value = st.opacity;
      b.querySelector(".fly").textContent = t("flyTo");
    }
    // the terrain
    const g = box.querySelector('[data-raster="terrain"]');
    g.hidden = !dems.length;
    if (dems.length) {
      const ref = demRef();
      const info = byName(dems, ref.name);
      g.querySelector(".toggle").checked = terrainOn();
      g.querySelector(".name").textContent = `${t("terrain")} · ${titleOf(info)}`;
      g.querySelector(".name").title = `${info.name} ${ref.epoch}`;
      g.querySelector(".count").textContent = resolution(info);
      const which = g.querySelector(".dem");
      which.replaceChildren(...dems.map((r) => new Option(`${titleOf(r)} · ${r.epoch}`, r.name)));
      which.value = ref.name;
      which.hidden = dems.length < 2;
      g.querySelector(".fly").textContent = t("flyTo");
    }
    // the swipe
    const s = box.querySelector('[data-raster="swipe"]');
    s.hidden = !swipeable();
    if (swipeable()) {
      s.querySelector(".toggle").checked = st.swipe;
      s.querySelector(".name").textContent = t("swipe");
      s.querySelector(".sides").hidden = !R.swipe.on;
      s.querySelector(".left-label").textContent = t("swipeLeft");
      s.querySelector(".right-label").textContent = t("swipeRight");
      for (const [cls, value] of [[".left", R.swipe.left], [".right", R.swipe.right]]) {
        const select = s.querySelector(cls);
        select.replaceChildren(...all.map(option));
        if (value) select.value = value;
      }
    }
  }
  function resolution(info) {
    const r = Number(info.resolution);
    return Number.isFinite(r) ? fill(t("rasterResolution"), { r: r.toLocaleString(locale(), { maximumFractionDigits: 2 }) }) : "";
  }
  function build(box) {
    box.innerHTML = `<h3></h3><ul class="raster-list">
      <li data-raster="basemap"><label><input type="checkbox" class="toggle"> <span class="swatch imagery"></span>
        <span class="name"></span></label><span class="count"></span>
        <div class="row"><select class="epoch"></select></div>
        <div class="row"><span class="op-label"></span><input type="range" class="opacity" min="0" max="1" step="0.05">
        <button type="button" class="fly"></button></div></li>
      <li data-raster="terrain"><label><input type="checkbox" class="toggle"> <span class="swatch terrain"></span>
        <span class="name"></span></label><span class="count"></span>
        <div class="row"><select class="dem"></select><button type="button" class="fly"></button></div></li>
      <li data-raster="swipe"><label><input type="checkbox" class="toggle"> <span class="swatch swipe"></span>
        <span class="name"></span></label>
        <div class="sides"><div class="row"><span class="left-label"></span><select class="left"></select></div>
        <div class="row"><span class="right-label"></span><select class="right"></select></div></div></li></ul>`;
    const b = box.querySelector('[data-raster="basemap"]');
    b.querySelector(".toggle").addEventListener("change", (e) => set({ basemap: e.target.checked }));
    b.querySelector(".epoch").addEventListener("change", (e) => set({ basemap: e.target.value }));
    b.querySelector(".opacity").addEventListener("input", (e) => set({ opacity: Number(e.target.value) }));
    b.querySelector(".fly").addEventListener("click", () => { const r = byName(doms, domRef().name); if (r) api.flyTo(r.bbox); });
    const g = box.querySelector('[data-raster="terrain"]');
    g.querySelector(".toggle").addEventListener("change", (e) => set({ terrain: e.target.checked }));
    g.querySelector(".dem").addEventListener("change", (e) => set({ terrain: e.target.value }));
    g.querySelector(".fly").addEventListener("click", () => { const r = byName(dems, demRef().name); if (r) api.flyTo(r.bbox); });
    const s = box.querySelector('[data-raster="swipe"]');
    s.querySelector(".toggle").addEventListener("change", (e) => set({ swipe: e.target.checked }));
    s.querySelector(".left").addEventListener("change", (e) => set({ swipe: { left: e.target.value } }));
    s.querySelector(".right").addEventListener("change", (e) => set({ swipe: { right: e.target.value } }));
  }

  // --- what is shown: the panel, the URL, a dashboard, the tests ---------------------------------------------------
  // basemap: true|false (on, off) or "NAME[@EPOCH]" (that DOM, and on); epoch: "YYYY-MM-DD" (of the basemap's
  // DOM); terrain: true|false or "NAME" (that DEM, and on); swipe: true|false|{left, right: "NAME@EPOCH", x: 0-1};
  // opacity: 0-1 (the imagery's). Only choices: {select: true} (the URL's basemap= and terrain= choose, layers= switches)
  function set(change = {}) {
    const on = (key, value) => {
      if (typeof value === "string") { (key === BASEMAP ? (st.dom = parseRef(value)) : (st.dem = parseRef(value))); }
      const visible = typeof value === "string" ? true : !!value;
      if (!(change.select && typeof value === "string") && api.isVisible(key) !== visible) api.setLayerVisible(key, visible);
    };
    if (change.basemap !== undefined && change.basemap !== null) on(BASEMAP, change.basemap);
    if (change.epoch) st.dom = { name: (st.dom || domRef() || {}).name, epoch: String(change.epoch) };
    if (change.terrain !== undefined && change.terrain !== null) on(TERRAIN, change.terrain);
    if (change.swipe !== undefined) {
      const s = change.swipe;
      st.swipe = !!s;
      if (s && typeof s === "object") {
        if (s.left) st.left = parseRef(s.left);
        if (s.right) st.right = parseRef(s.right);
        if (s.x !== undefined && Number.isFinite(Number(s.x))) swipe.setX(s.x);
      }
    }
    if (change.opacity !== undefined && Number.isFinite(Number(change.opacity))) {
      st.opacity = Math.min(1, Math.max(0, Number(change.opacity)));
    }
    return draw();
  }

  function fromUrl(hash) {
    const change = { select: true };
    if (hash.get("basemap")) change.basemap = hash.get("basemap");
    if (hash.get("terrain")) change.terrain = hash.get("terrain");
    const swipe = hash.get("swipe");
    if (swipe) {
      const [left, right, x] = swipe.split(",");
      change.swipe = swipe === "on" ? true : { left, right, x: x === undefined ? undefined : Number(x) };
    }
    if (hash.has("rasterOpacity")) change.opacity = Number(hash.get("rasterOpacity"));
    return change;
  }

  function toUrl(p) {
    if (!doms.length && !dems.length) return;
    if (st.dom && doms.length) {  // chosen (by default: the newest DOM, its newest epoch)
      const ref = domRef();
      p.set("basemap", ref.epoch === byName(doms, ref.name).epoch ? ref.name : refKey(ref));
    }
    if (st.dem && dems.length) p.set("terrain", demRef().name);
    if (R.swipe.on) p.set("swipe", [R.swipe.left, R.swipe.right, swipe.x.toFixed(3)].join(","));
    if (st.opacity !== 1) p.set("rasterOpacity", String(st.opacity));
  }

  // --- wiring ----------------------------------------------------------------------------------------------------
  api.busy.add(KEY);
  api.onWriteUrl.push(toUrl);
  api.onLanguage.push(() => { panel(); placeDivider(); });
  swipe.onMove.push(placeDivider);
  api.onMessage.push((m) => { if (m.type === "cim:rasters.set") set(m); });
  api.onVisibility.push((key) => { if (key === BASEMAP || key === TERRAIN) draw(); });
  window.cimRasters = { set, state: () => ({ ...st, x: swipe.x }) };
  const wanted = fromUrl(api.initialHash);
  fetch(`${setup.base}/rasters`).then((r) => {
    if (!r.ok) throw new Error(`/rasters: HTTP ${r.status}`);
    return r.json();
  }).then(async (listed) => {
    R.rasters = listed;
    doms = listed.filter((r) => r.kind === "dom").sort(newestFirst);
    // the terrain by default: the newest DEM under the view's centre (a newer DEM of another place would leave the
    // layers draped on the terrain undrawn here), the newest of all when none is
    const { longitude: lon, latitude: lat } = api.viewState;
    const under = (r) => Array.isArray(r.bbox) && lon >= r.bbox[0] && lon <= r.bbox[2] && lat >= r.bbox[1] && lat <= r.bbox[3];
    dems = listed.filter((r) => r.kind === "dem").sort((a, b) => Number(under(b)) - Number(under(a)) || newestFirst(a, b));
    if (!doms.length && !dems.length) return;  // the viewer as it is without imagery
    // on the ground as the page opens (CIM_VIEWER_GROUND), unless its link lists the layers: the newest DOM and DEM
    // (or those the link's basemap= and terrain= name). Otherwise listed, off until switched on (the layer list,
    // layers=...,basemap,terrain, or a dashboard).
    // The screen mode (a command view of the district from above: areas and points) has the imagery only: there
    // the terrain buys little and costs much (bench/RESULTS.md: 270,000 sensors on it, done in 24-44 s instead of 7-9)
    if (setup.ground && !api.initialHash.has("layers")) {
      if (doms.length) wanted.basemap = wanted.basemap || true;
      if (dems.length && !api.screenMode) wanted.terrain = wanted.terrain || true;
      delete wanted.select;  // a name in the link: that one, and on
    }
    await set(wanted);
  }).catch((err) => {
    R.errors.push(String(err));
  }).finally(() => {
    api.busy.delete(KEY);
    api.deck.redraw("rasters");  // the page is done once what it draws is loaded
  });
})();
