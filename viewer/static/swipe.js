// The swipe (卷帘对比): two things side by side, left and right of a divider dragged across the map. Two swipes
// share this machinery and its one divider: the epoch swipe of rasters.js (two orthophoto epochs, or two DOMs)
// and the layer swipe written here (two layers of the list: the white model of one survey against another's,
// the parcels against the farmland...). One runs at a time: starting one ends the other.
//
// The clipping is in screen space: a small layer extension discards the fragments on the other side of the
// divider (gl_FragCoord.x against a uniform; side -1 keeps the left, +1 the right). deck.gl 9.4's ClipExtension
// clips to a rectangle of the layer's world coordinates (a vertical line of the screen is no meridian once the
// map is rotated or pitched, and the terrain's meshes are in their tiles' own coordinates) and MaskExtension to
// a polygon that would have to be unprojected again at every frame of a pan (impossible past the horizon); a
// screen-space test is exact at any bearing and pitch, and moving the divider is one redraw, no layer updated.
//
// api.swipe (for rasters.js and any other module):
//   extension(side)            the extension that keeps "left" or "right" of the divider (two instances, shared)
//   x                          the divider's place, a fraction (0-1) of the map's width
//   setX(f, write)             moves it (and redraws; write: the URL too)
//   begin(owner, stop)         `owner` ("rasters", "layers") is the swipe on; another one on is ended first
//                              (its stop() called)
//   end(owner)                 `owner` is off: the divider goes (if `owner` was the one on)
//   active                     the owner on, or null
//   showDivider(left, right) / hideDivider()   the divider with each side's label
//   onMove                     [(fraction)]: after every move of the divider (and a resize of the map)
//
// The layer swipe: the 卷帘 button among the map tools (top right) opens a small popover: the left and right
// layers (the list's entries, by title) and a switch. On, both layers are shown; every deck layer of the left
// entry gets the left side's extension, the right entry's the right side's (through api.layerTransforms), and
// the divider shows their titles. The URL keeps it: swipeLayers=LEFT,RIGHT[,X] (entry keys; X: the divider,
// 0-1); a dashboard sends {type: "cim:swipe.layers", left, right, x} (left null: off) and is told
// {type: "cim:swipe.layersChanged", left, right, x} (left null: off).
//
// 3D Tiles: a Tile3DLayer swiped has its tiles' sublayers made again with the extension (api.retile, viewer.js:
// deck.gl builds a tile's sublayer and its glTF models once, with the extensions they had then).
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: the layer swipe (left, right: entry keys; x: the divider, 0-1)
  const L = { on: false, left: null, right: null, x: 0.5, errors: [] };
  window.__cimSwipe = L;
  if (!api) return;
  const TEXT = {
    zh: { button: "卷帘", buttonTip: "卷帘对比：左右对比两个图层", title: "图层卷帘对比", left: "左侧", right: "右侧",
          on: "开启卷帘", handle: "拖动对比" },
    en: { button: "Swipe", buttonTip: "Swipe: compare two layers left and right of a divider", title: "Layer swipe",
          left: "Left", right: "Right", on: "Swipe on", handle: "Drag to compare" },
  };
  const lang = () => (document.documentElement.lang === "en" ? "en" : "zh");
  const text = (key) => TEXT[lang()][key];
  const $ = (id) => document.getElementById(id);
  const clamp = (f) => Math.min(1, Math.max(0, Number(f)));

  // --- the extension: fragments on the other side of the divider are discarded ----------------------------------
  let fraction = 0.5;
  const swipeModule = {
    name: "swipe",
    fs: "layout(std140) uniform swipeUniforms {\n  float x;\n  float side;\n} swipe;\n",
    uniformTypes: { x: "f32", side: "f32" },
  };
  class SwipeExtension extends deck.LayerExtension {
    getShaders() {
      return {
        modules: [swipeModule],
        // side -1 keeps what is left of the divider, +1 what is right of it (gl_FragCoord: the drawing buffer's pixels)
        inject: { "fs:DECKGL_FILTER_COLOR": "  if ((gl_FragCoord.x - swipe.x) * swipe.side < 0.0) discard;\n" },
      };
    }
    draw(params, extension) {
      const canvas = api.deck.getCanvas();
      this.setShaderModuleProps({ swipe: { x: fraction * (canvas ? canvas.width : 0), side: extension.opts.side } });
    }
  }
  SwipeExtension.extensionName = "SwipeExtension";
  const SIDES = { left: new SwipeExtension({ side: -1 }), right: new SwipeExtension({ side: 1 }) };

  // --- the divider over the map (below the panel), with each side's label; made when first shown ----------------
  let divider = null;
  let labels = ["", ""];
  let shown = false;
  const onMove = [];
  function makeDivider() {
    divider = document.createElement("div");
    divider.id = "swipe";
    divider.hidden = true;
    divider.innerHTML = `<div class="swipe-line"></div><div class="swipe-handle" role="slider" tabindex="0"
      aria-valuemin="0" aria-valuemax="100">⇔</div><span class="swipe-label left"></span><span class="swipe-label right"></span>`;
    $("map").after(divider);
    let dragging = false;
    const moveTo = (clientX) => {
      const rect = $("map").getBoundingClientRect();
      setX((clientX - rect.left) / rect.width);
    };
    divider.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      dragging = true;
      try { divider.setPointerCapture(e.pointerId); } catch { /* a pointer already gone */ }
      divider.classList.add("dragging");
    });
    divider.addEventListener("pointermove", (e) => { if (dragging) { e.stopPropagation(); moveTo(e.clientX); } });
    const stop = (e) => {
      if (!dragging) return;
      dragging = false;
      divider.classList.remove("dragging");
      try { divider.releasePointerCapture(e.pointerId); } catch { /* not captured */ }
      written();
    };
    divider.addEventListener("pointerup", stop);
    divider.addEventListener("pointercancel", stop);
    divider.querySelector(".swipe-handle").addEventListener("keydown", (e) => {
      const to = { ArrowLeft: fraction - 0.02, ArrowRight: fraction + 0.02, Home: 0, End: 1 }[e.key];
      if (to !== undefined) { e.preventDefault(); setX(to, true); }
    });
    window.addEventListener("resize", () => { place(); for (const f of onMove) f(fraction); });
  }
  function place() {
    if (!divider) return;
    divider.hidden = !shown;
    divider.style.left = `${fraction * $("map").clientWidth}px`;
    const handle = divider.querySelector(".swipe-handle");
    handle.title = text("handle");
    handle.setAttribute("aria-label", text("handle"));
    handle.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    divider.querySelector(".swipe-label.left").textContent = labels[0];
    divider.querySelector(".swipe-label.right").textContent = labels[1];
  }
  // the divider to `f` (0-1 of the map's width); write: the URL too (the end of a drag, a key)
  function setX(f, write = false) {
    if (!Number.isFinite(Number(f))) return;
    fraction = clamp(f);
    L.x = fraction;
    place();
    api.deck.redraw("swipe");  // the extension reads the fraction at each draw: nothing else changes
    for (const g of onMove) g(fraction);
    if (write) written();
  }
  // a move done (a drag's end, a key): the URL, and a dashboard told
  function written() {
    api.writeUrl();
    if (active && active.owner === OWNER) tell();
  }
  function showDivider(left, right) {
    if (!divider) makeDivider();
    labels = [String(left ?? ""), String(right ?? "")];
    shown = true;
    place();
  }
  function hideDivider() {
    shown = false;
    place();
  }

  // --- one swipe at a time ---------------------------------------------------------------------------------------
  let active = null;  // {owner, stop}
  function begin(owner, stop) {
    if (active && active.owner !== owner) {
      const previous = active;
      active = null;
      try { previous.stop(); } catch (err) { L.errors.push(String(err)); }
    }
    active = { owner, stop };
  }
  function end(owner) {
    if (!active || active.owner !== owner) return;
    active = null;
    hideDivider();
  }

  api.swipe = {
    extension: (side) => SIDES[side],
    get x() { return fraction; },
    setX,
    begin,
    end,
    get active() { return active ? active.owner : null; },
    showDivider,
    hideDivider,
    onMove,
  };

  // ===== the layer swipe ==========================================================================================
  const OWNER = "layers";
  const components = new Set((api.config.components && api.config.components.layers) || []);
  // the entries it can show: those drawn from the list's deck layers (not live.js' or components.js' overlays)
  const choices = (api.config.entries || []).filter((e) => e.ids.length && !api.liveKeys.has(e.key) && !components.has(e.key));
  const byKey = new Map(choices.map((e) => [e.key, e]));
  const title = (key) => (byKey.has(key) ? byKey.get(key).title[lang()] : "");
  const sideOf = new Map();  // deck layer id -> "left" | "right", while on

  // the defaults: for the left the first entry shown with a tileset or polygons (or the first shown, or the first);
  // for the right its twin (buildings and buildings_2026), or the next one shown, or the next one
  const areal = (e) => e.tileset || /polygon/i.test(e.geometry || "");
  function defaultLeft(not) {
    const fits = (e) => e.key !== not;
    return (choices.find((e) => fits(e) && api.isVisible(e.key) && areal(e)) || choices.find((e) => fits(e) && api.isVisible(e.key))
      || choices.find((e) => fits(e) && areal(e)) || choices.find(fits) || {}).key || null;
  }
  function defaultRight(left) {
    const others = choices.filter((e) => e.key !== left);
    const twin = others.find((e) => left && (e.key.startsWith(`${left}_`) || left.startsWith(`${e.key}_`)));
    const l = byKey.get(left);
    const alike = (e) => !l || e.tileset === l.tileset || (areal(e) && areal(l));
    return (twin || others.find((e) => api.isVisible(e.key) && alike(e)) || others.find((e) => api.isVisible(e.key))
      || others.find(alike) || others[0] || {}).key || null;
  }

  // the cloned layers: a side's extension; a Tile3DLayer also its tiles' sublayers made again (see the top)
  const tiled = new Set();  // the Tile3DLayers once swiped: their sublayers made again when the swipe is off
  api.layerTransforms.push((layer) => {
    const side = L.on ? sideOf.get(layer.id) : undefined;
    const tiles = deck.Tile3DLayer && layer instanceof deck.Tile3DLayer;
    if (!side && !(tiles && tiled.has(layer.id))) return layer;
    const out = side ? layer.clone({ extensions: [...(layer.props.extensions || []), SIDES[side]] }) : layer;
    if (!tiles) return out;
    tiled.add(layer.id);
    return api.retile(out, "swipe", side || "off");
  });

  // left, right: entry keys (null: the defaults); x: 0-1 (undefined: where it is). left null with on false: off
  function start({ left = null, right = null, x } = {}) {
    const l = byKey.has(left) ? left : null;
    if (left && !l) L.errors.push(`swipeLayers: no layer ${left}`);
    if (right && !byKey.has(right)) L.errors.push(`swipeLayers: no layer ${right}`);
    const chosenLeft = l || defaultLeft(byKey.has(right) ? right : null);
    let chosenRight = byKey.has(right) && right !== chosenLeft ? right : defaultRight(chosenLeft);
    if (chosenRight === chosenLeft) chosenRight = null;
    if (!chosenLeft || !chosenRight) { L.errors.push("swipeLayers: two layers are needed"); return false; }
    begin(OWNER, stop);
    Object.assign(L, { on: true, left: chosenLeft, right: chosenRight });
    sideOf.clear();
    for (const id of byKey.get(chosenLeft).ids) sideOf.set(id, "left");
    for (const id of byKey.get(chosenRight).ids) sideOf.set(id, "right");
    if (x !== undefined && x !== null && Number.isFinite(Number(x))) setX(x);
    for (const key of [chosenLeft, chosenRight]) if (!api.isVisible(key)) api.setLayerVisible(key, true);
    showDivider(title(chosenLeft), title(chosenRight));
    api.redraw();
    api.writeUrl();
    popover();
    tell();
    return true;
  }
  // off (or ended by the other swipe): the layers stay as they are, unclipped
  function stop() {
    if (!L.on) return;
    L.on = false;
    sideOf.clear();
    end(OWNER);
    api.redraw();
    api.writeUrl();
    popover();
    tell();
  }
  function tell() {
    api.notifyParent("cim:swipe.layersChanged", L.on ? { left: L.left, right: L.right, x: fraction } : { left: null, right: null, x: fraction });
  }

  // --- the button and its popover ----------------------------------------------------------------------------------
  let wrap = null;
  function makeButton() {
    const slot = api.slot("top-right");
    if (!slot || choices.length < 2) return;
    wrap = document.createElement("div");
    wrap.className = "cim-swipe";
    wrap.innerHTML = `<button type="button" class="cim-tool cim-swipe-button" aria-haspopup="true" aria-expanded="false"></button>
      <div class="cim-swipe-pop" role="dialog" hidden><div class="cim-swipe-title"></div>
        <label class="cim-swipe-row"><span class="cim-swipe-left-label"></span><select class="cim-swipe-left"></select></label>
        <label class="cim-swipe-row"><span class="cim-swipe-right-label"></span><select class="cim-swipe-right"></select></label>
        <label class="cim-swipe-switch"><input type="checkbox" class="cim-swipe-on"> <span></span></label></div>`;
    (slot.querySelector(".cim-tools") || slot).append(wrap);  // after the map tools (tools.js: loaded after this)
    const button = wrap.querySelector(".cim-swipe-button");
    const pop = wrap.querySelector(".cim-swipe-pop");
    // opening it starts the swipe (its defaults) when off; closing leaves it as it is
    button.addEventListener("click", () => {
      pop.hidden = !pop.hidden;
      if (!pop.hidden && !L.on) start();
      popover();
    });
    const pick = () => start({ left: wrap.querySelector(".cim-swipe-left").value, right: wrap.querySelector(".cim-swipe-right").value });
    wrap.querySelector(".cim-swipe-left").addEventListener("change", pick);
    wrap.querySelector(".cim-swipe-right").addEventListener("change", pick);
    wrap.querySelector(".cim-swipe-on").addEventListener("change", (e) => (e.target.checked ? pick() : stop()));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !pop.hidden) { pop.hidden = true; popover(); } });
    document.addEventListener("pointerdown", (e) => { if (!pop.hidden && !wrap.contains(e.target)) { pop.hidden = true; popover(); } });
    popover();
  }
  function popover() {
    if (!wrap) return;
    const button = wrap.querySelector(".cim-swipe-button");
    const pop = wrap.querySelector(".cim-swipe-pop");
    button.textContent = text("button");
    button.title = text("buttonTip");
    button.setAttribute("aria-label", text("buttonTip"));
    button.setAttribute("aria-expanded", String(!pop.hidden));
    button.classList.toggle("active", L.on);
    wrap.querySelector(".cim-swipe-title").textContent = text("title");
    wrap.querySelector(".cim-swipe-left-label").textContent = text("left");
    wrap.querySelector(".cim-swipe-right-label").textContent = text("right");
    wrap.querySelector(".cim-swipe-switch span").textContent = text("on");
    wrap.querySelector(".cim-swipe-on").checked = L.on;
    const left = L.left || defaultLeft(null);
    const right = L.right && L.right !== left ? L.right : defaultRight(left);
    for (const [cls, value] of [[".cim-swipe-left", left], [".cim-swipe-right", right]]) {
      const select = wrap.querySelector(cls);
      select.replaceChildren(...choices.map((e) => new Option(e.title[lang()], e.key)));
      if (value) select.value = value;
    }
  }

  // --- the URL, a dashboard, the language ----------------------------------------------------------------------------
  api.onWriteUrl.push((p) => {
    if (L.on) p.set("swipeLayers", [L.left, L.right, fraction.toFixed(3)].join(","));
  });
  api.onMessage.push((m) => {
    if (m.type !== "cim:swipe.layers") return;
    if (m.left === null || m.left === false || m.on === false) stop();
    else start({ left: m.left, right: m.right, x: m.x });
  });
  api.onLanguage.push(() => {
    if (L.on) showDivider(title(L.left), title(L.right));
    else place();
    popover();
  });
  const wanted = api.initialHash.get("swipeLayers");
  if (wanted) {
    const [left, right, x] = wanted.split(",");
    start({ left: left || null, right: right || null, x: x === undefined || x === "" ? undefined : Number(x) });
  }
  // the button once every script has run: after the map tools' buttons (tools.js runs after this one)
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", makeButton);
  else makeButton();
})();
