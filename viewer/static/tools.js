// Map tools for planners (地图工具): a scale bar under the layer panel, a north arrow (指北针: it turns
// with the map; a click brings the map back to north-up and top-down), measuring (测距 distance, 测面
// area, 测高 height) and the map exported as a PNG (导出图片) with its title, date, scale bar and north
// arrow drawn on it.
//
// Measuring: a tool's button starts it; each click on the map adds a point (picked in 3D: on a roof
// or a 3D tile where there is one, on the ground elsewhere); a double-click or 完成 ends it, Esc
// cancels it (Backspace takes the last point back). While measuring, clicks are the tool's only: the
// other modules' click handlers (land.js, components.js, live.js...) do not see them, and the map's
// double-click zoom is off. What is measured is drawn as the viewer's overlay "measure" (deck layers;
// kept out of the URL's layers=).
//
// Geodesy on the WGS84 ellipsoid, written here: no geodesic library is bundled with the viewer
// (node_modules has no geographiclib, and the page may load nothing from a CDN), and a city needs
// little of one:
// - distance: Vincenty's inverse formula (1975), iterated to 1e-12 rad: good to 0.5 mm on any line
//   that is not nearly antipodal (its one weakness, irrelevant within a city);
// - area: the polygon mapped on the authalic sphere (the sphere of the ellipsoid's area, latitudes
//   made authalic: an exactly equal-area mapping), its area the spherical excess of great-circle
//   edges summed edge by edge (Karney's per-edge formula, tan(E/2) = tan(dλ/2)(tan(β1/2) + tan(β2/2))
//   / (1 + tan(β1/2) tan(β2/2))). Equal-area, the mapping changes no area; the one approximation is
//   the edge, a great circle on the sphere where the true edge is the image of an ellipsoidal
//   geodesic: they part by O(e² L² / R) (about 1 cm on a 10 km edge), an area of about 1e-6 of a
//   polygon's with 10 km edges, far under the 0.05 % a planner may notice (tests/test_viewer_tools.py
//   compares with pyproj's Geod, Karney's algorithm: a parcel, a 2 km line, a district, 10 km).
(() => {
  "use strict";
  // ===== geodesy (WGS84) =====
  const A = 6378137, F = 1 / 298.257223563, B = A * (1 - F), E2 = F * (2 - F), E = Math.sqrt(E2);
  const rad = (d) => (d * Math.PI) / 180;

  // Vincenty's inverse: the geodesic distance in metres between two [lon, lat] (degrees)
  function inverse(p1, p2) {
    const L = rad(p2[0] - p1[0]);
    const U1 = Math.atan((1 - F) * Math.tan(rad(p1[1]))), U2 = Math.atan((1 - F) * Math.tan(rad(p2[1])));
    const sinU1 = Math.sin(U1), cosU1 = Math.cos(U1), sinU2 = Math.sin(U2), cosU2 = Math.cos(U2);
    let lambda = L, lambdaP, iter = 0;
    let sinSigma, cosSigma, sigma, cosSqAlpha, cos2SigmaM;
    do {
      const sinLambda = Math.sin(lambda), cosLambda = Math.cos(lambda);
      sinSigma = Math.hypot(cosU2 * sinLambda, cosU1 * sinU2 - sinU1 * cosU2 * cosLambda);
      if (sinSigma === 0) return 0;  // the same point
      cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosLambda;
      sigma = Math.atan2(sinSigma, cosSigma);
      const sinAlpha = (cosU1 * cosU2 * sinLambda) / sinSigma;
      cosSqAlpha = 1 - sinAlpha * sinAlpha;
      cos2SigmaM = cosSqAlpha !== 0 ? cosSigma - (2 * sinU1 * sinU2) / cosSqAlpha : 0;  // on the equator: 0
      const C = (F / 16) * cosSqAlpha * (4 + F * (4 - 3 * cosSqAlpha));
      lambdaP = lambda;
      lambda = L + (1 - C) * F * sinAlpha * (sigma + C * sinSigma * (cos2SigmaM + C * cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)));
    } while (Math.abs(lambda - lambdaP) > 1e-12 && ++iter < 200);
    const uSq = (cosSqAlpha * (A * A - B * B)) / (B * B);
    const bigA = 1 + (uSq / 16384) * (4096 + uSq * (-768 + uSq * (320 - 175 * uSq)));
    const bigB = (uSq / 1024) * (256 + uSq * (-128 + uSq * (74 - 47 * uSq)));
    const c2 = cos2SigmaM * cos2SigmaM;
    const deltaSigma = bigB * sinSigma * (cos2SigmaM + (bigB / 4) * (cosSigma * (-1 + 2 * c2)
      - (bigB / 6) * cos2SigmaM * (-3 + 4 * sinSigma * sinSigma) * (-3 + 4 * c2)));
    return B * bigA * (sigma - deltaSigma);
  }

  // the authalic sphere: q(φ) as in Snyder (3-12), its radius and the authalic latitude β
  const q = (sinPhi) => (1 - E2) * (sinPhi / (1 - E2 * sinPhi * sinPhi)
    - (1 / (2 * E)) * Math.log((1 - E * sinPhi) / (1 + E * sinPhi)));
  const QP = q(1);
  const RQ = A * Math.sqrt(QP / 2);
  const authalic = (lat) => Math.asin(Math.max(-1, Math.min(1, q(Math.sin(rad(lat))) / QP)));

  // a polygon's area in m² (a ring of [lon, lat], open or closed; either orientation)
  function polygonArea(ring) {
    const pts = ring.length > 1 && ring[0][0] === ring[ring.length - 1][0] && ring[0][1] === ring[ring.length - 1][1]
      ? ring.slice(0, -1) : ring;
    if (pts.length < 3) return 0;
    let sum = 0;
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i], n = pts[(i + 1) % pts.length];
      let dl = rad(n[0] - p[0]);
      dl = Math.atan2(Math.sin(dl), Math.cos(dl));  // across the antimeridian too
      const t1 = Math.tan(authalic(p[1]) / 2), t2 = Math.tan(authalic(n[1]) / 2);
      sum += 2 * Math.atan2(Math.tan(dl / 2) * (t1 + t2), 1 + t1 * t2);
    }
    const excess = Math.abs(sum);
    return RQ * RQ * Math.min(excess, 4 * Math.PI - excess);
  }

  const pathLength = (pts) => pts.slice(1).reduce((s, p, i) => s + inverse(pts[i], p), 0);
  // ===== end of geodesy =====

  const api = window.cimViewer;
  // what the tests read: the measure (mode, points [[lon, lat, z]], distance_m, area_m2, perimeter_m, height_m,
  // horizontal_m, active: still taking points), the scale bar (metres, pixels, metresPerPixel), the map's
  // bearing and pitch, and the last export (its size, file name, where its scale bar and north arrow were drawn)
  const T = {
    measure: { mode: null, active: false, points: [], distance_m: null, area_m2: null, perimeter_m: null,
               height_m: null, horizontal_m: null },
    scale: { metres: null, pixels: null, metresPerPixel: null, label: "" },
    bearing: 0,
    pitch: 0,
    export: null,
    lastPick: null,  // the last point a click picked: its layer, its object's id, z before any correction
    clicks: 0,  // map clicks the measure took (and kept from the other modules)
    passed: 0,  // map clicks passed on to the other modules (none while measuring)
  };
  window.__cimTools = T;
  if (!api) return;

  // --- strings ---------------------------------------------------------------------------------------------
  const STRINGS = {
    zh: {
      distance: "测距", area: "测面", height: "测高", done: "完成", export: "导出",
      distanceTip: "测距：单击地图逐点添加，双击或点“完成”结束，Esc 取消",
      areaTip: "测面：单击地图逐点围出多边形，双击或点“完成”结束，Esc 取消",
      heightTip: "测高：先单击低处一点（如楼底），再单击高处一点（如楼顶），Esc 取消",
      doneTip: "完成测量", exportTip: "导出图片：当前地图视图（含标题、日期、比例尺、指北针）存为 PNG",
      northTip: "指北针（方位 {bearing}°，俯仰 {pitch}°）：点击复位为正北、俯视",
      scaleTip: "比例尺（地图中心处）",
      clear: "清除", clearTip: "清除测量结果（Esc）",
      m: "米", km: "千米", m2: "平方米", mu: "亩", ha: "公顷",
      lengthLabel: "距离", areaLabel: "面积", perimeterLabel: "周长", heightLabel: "高差", horizontalLabel: "水平距离",
      hintDistance: "单击添加点，双击或“完成”结束", hintArea: "单击添加顶点（至少 3 个），双击或“完成”结束",
      hintHeight1: "单击第一点（低处）", hintHeight2: "单击第二点（高处）",
      north: "北", exported: "导出时间",
    },
    en: {
      distance: "Dist", area: "Area", height: "Hgt", done: "Done", export: "PNG",
      distanceTip: "Measure distance: click points on the map; double-click or Done to finish, Esc to cancel",
      areaTip: "Measure area: click the polygon's corners; double-click or Done to finish, Esc to cancel",
      heightTip: "Measure height: click a low point (a building's foot), then a high one (its roof); Esc to cancel",
      doneTip: "Finish the measurement", exportTip: "Export the map view as a PNG (title, date, scale bar, north arrow)",
      northTip: "North arrow (bearing {bearing}°, pitch {pitch}°): click for north up, top-down",
      scaleTip: "Scale bar (at the map's centre)",
      clear: "Clear", clearTip: "Clear the measurement (Esc)",
      m: "m", km: "km", m2: "m²", mu: "mu", ha: "ha",
      lengthLabel: "Distance", areaLabel: "Area", perimeterLabel: "Perimeter", heightLabel: "Height difference",
      horizontalLabel: "Horizontal distance",
      hintDistance: "Click to add points; double-click or Done to finish",
      hintArea: "Click the corners (3 or more); double-click or Done to finish",
      hintHeight1: "Click the first (low) point", hintHeight2: "Click the second (high) point",
      north: "N", exported: "Exported",
    },
  };
  const lang = () => (document.documentElement.lang === "en" ? "en" : "zh");
  const s = (key, values) => String(STRINGS[lang()][key]).replace(/\{(\w+)\}/g, (_, k) => values[k]);
  const locale = () => (lang() === "en" ? "en" : "zh-CN");
  const num = (x, digits) => x.toLocaleString(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const sep = () => (lang() === "en" ? ", " : "，");

  function fmtLength(m) {
    if (m >= 1000) return `${num(m / 1000, 3)} ${s("km")}`;
    return `${num(m, m < 10 ? 2 : 1)} ${s("m")}`;
  }
  function fmtArea(m2) {
    return `${num(m2, m2 < 100 ? 2 : 1)} ${s("m2")}${sep()}${num(m2 / (10000 / 15), 2)} ${s("mu")}${sep()}` +
      `${num(m2 / 10000, m2 < 100 ? 4 : 2)} ${s("ha")}`;
  }

  // --- the controls --------------------------------------------------------------------------------------
  const top = api.slot("top-right");
  const bottom = api.slot("bottom-left");
  const el = (tag, cls, html) => { const e = document.createElement(tag); if (cls) e.className = cls; if (html) e.innerHTML = html; return e; };
  const button = (cls) => { const b = el("button", `cim-tool ${cls}`); b.type = "button"; return b; };

  const north = button("cim-north");
  north.innerHTML = `<svg viewBox="-20 -20 40 40" aria-hidden="true"><g class="cim-needle">
    <polygon points="0,-15 6,0 -6,0" fill="#e5483a"/><polygon points="0,15 6,0 -6,0" fill="#dfe6ef"/>
    <circle r="2" fill="#1d2a3b"/><text class="cim-north-letter" x="0" y="-15.5" text-anchor="middle"></text></g></svg>`;
  const needle = north.querySelector(".cim-needle");
  const letter = north.querySelector(".cim-north-letter");
  north.addEventListener("click", () => api.setView({ bearing: 0, pitch: 0 }, 600));

  const modeButtons = {};
  for (const mode of ["distance", "area", "height"]) {
    const b = button(`cim-measure-${mode}`);
    b.dataset.mode = mode;
    b.addEventListener("click", () => (T.measure.active && T.measure.mode === mode ? cancel() : start(mode)));
    modeButtons[mode] = b;
  }
  const doneButton = button("cim-measure-done");
  doneButton.hidden = true;
  doneButton.addEventListener("click", () => finish());
  const exportButton = button("cim-export");
  exportButton.addEventListener("click", () => {
    exportPng({ download: true }).catch((err) => { T.exportError = String(err && err.message || err); });
  });
  const group = el("div", "cim-tools");
  group.append(north, modeButtons.distance, modeButtons.area, modeButtons.height, doneButton, exportButton);
  top.append(group);

  const scaleBox = el("div", "cim-scale", `<div class="cim-scale-label"></div><div class="cim-scale-bar"></div>`);
  const scaleLabel = scaleBox.querySelector(".cim-scale-label");
  const scaleBar = scaleBox.querySelector(".cim-scale-bar");
  const readout = el("div", "cim-readout", `<span class="cim-readout-text"></span>`);
  const readoutText = readout.querySelector(".cim-readout-text");
  const clearButton = el("button", "cim-readout-clear");
  clearButton.type = "button";
  clearButton.textContent = "×";
  clearButton.addEventListener("click", () => cancel());
  readout.append(clearButton);
  readout.hidden = true;
  const foot = el("div", "cim-foot");
  foot.append(scaleBox, readout);
  bottom.append(foot);

  function labels() {
    for (const [mode, b] of Object.entries(modeButtons)) {
      b.textContent = s(mode);
      b.title = s(`${mode}Tip`);
      b.setAttribute("aria-label", s(`${mode}Tip`));
    }
    doneButton.textContent = s("done");
    doneButton.title = s("doneTip");
    exportButton.textContent = s("export");
    exportButton.title = s("exportTip");
    exportButton.setAttribute("aria-label", s("exportTip"));
    letter.textContent = s("north");
    clearButton.title = s("clearTip");
    clearButton.setAttribute("aria-label", s("clearTip"));
    scaleBox.title = s("scaleTip");
    showView(api.viewState);
    showMeasure();
  }

  // --- scale bar and north arrow ---------------------------------------------------------------------
  // metres per CSS pixel along the parallel through the map's centre: deck.gl's world is 512 pixels wide
  // at zoom 0 (its tiles are 512 px: zoom z of deck is zoom z + 1 of 256-px tiles), a pixel is 2π/(512·2^z)
  // of longitude, and a radian of longitude is N·cos φ metres on the ellipsoid (N: the radius of curvature
  // in the prime vertical). With pitch, a pixel across the screen at the centre keeps that scale.
  function metresPerPixel(view) {
    const phi = rad(view.latitude);
    const N = A / Math.sqrt(1 - E2 * Math.sin(phi) ** 2);
    return (2 * Math.PI * N * Math.cos(phi)) / (512 * 2 ** view.zoom);
  }
  // the longest round length (1, 2 or 5 × 10^n metres) not over maxPixels
  function niceScale(mpp, maxPixels = 120) {
    const most = mpp * maxPixels;
    const power = 10 ** Math.floor(Math.log10(most));
    const metres = [5, 2, 1].map((k) => k * power).find((m) => m <= most) || power;
    return { metres, pixels: metres / mpp };
  }
  const scaleText = (metres) => (metres >= 1000 ? `${metres / 1000} ${s("km")}` : `${+metres.toPrecision(6)} ${s("m")}`);

  function showView(view) {
    if (!view || !Number.isFinite(view.zoom)) return;
    const mpp = metresPerPixel(view);
    const { metres, pixels } = niceScale(mpp);
    T.scale = { metres, pixels, metresPerPixel: mpp, label: scaleText(metres) };
    scaleLabel.textContent = T.scale.label;
    scaleBar.style.width = `${pixels}px`;
    const bearing = view.bearing || 0, pitch = view.pitch || 0;
    T.bearing = bearing;
    T.pitch = pitch;
    // the needle points north on the screen; the map's pitch tilts it a little
    needle.style.transform = `rotate(${-bearing}deg)`;
    north.querySelector("svg").style.transform = `perspective(60px) rotateX(${pitch * 0.5}deg)`;
    north.title = s("northTip", { bearing: Math.round(bearing), pitch: Math.round(pitch) });
    north.setAttribute("aria-label", north.title);
    north.classList.toggle("turned", Math.abs(bearing) > 0.05 || Math.abs(pitch) > 0.05);
  }
  api.onView.push(showView);

  // --- measuring -----------------------------------------------------------------------------------------
  const KEY = "measure";  // the decoration's key (drawn over the map, not a layer of the list)
  const FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif';
  const LINE = [40, 220, 255];  // cyan: apart from the parcels' yellow, the white model and the dark ground
  const ON_TOP = { depthCompare: "always", depthWriteEnabled: false };  // drawn over buildings and tiles
  let preview = null;  // [lon, lat, z] under the pointer, while taking points
  let previewFrame = 0;  // the rubber band is drawn once a frame at most
  let saved = null;  // the deck's controller and cursor while measuring (double-click zoom off)

  function compute() {
    const m = T.measure, pts = m.points;
    m.distance_m = m.area_m2 = m.perimeter_m = m.height_m = m.horizontal_m = null;
    if (m.mode === "distance" && pts.length >= 1) m.distance_m = pathLength(pts);
    if (m.mode === "area") {
      if (pts.length >= 2) m.distance_m = pathLength(pts);
      if (pts.length >= 3) {
        m.area_m2 = polygonArea(pts);
        m.perimeter_m = pathLength([...pts, pts[0]]);
      }
    }
    if (m.mode === "height" && pts.length === 2) {
      m.height_m = Math.abs((pts[1][2] || 0) - (pts[0][2] || 0));
      m.horizontal_m = inverse(pts[0], pts[1]);
    }
    return result();
  }
  const result = () => JSON.parse(JSON.stringify(T.measure));

  function summary() {
    const m = T.measure;
    if (m.mode === "distance") {
      return m.points.length >= 2 ? `${s("lengthLabel")} ${fmtLength(m.distance_m)}` : (m.active ? s("hintDistance") : "");
    }
    if (m.mode === "area") {
      if (m.area_m2 !== null) return `${s("areaLabel")} ${fmtArea(m.area_m2)}${sep()}${s("perimeterLabel")} ${fmtLength(m.perimeter_m)}`;
      return m.active ? s("hintArea") : "";
    }
    if (m.mode === "height") {
      if (m.height_m !== null) return `${s("heightLabel")} ${fmtLength(m.height_m)}${sep()}${s("horizontalLabel")} ${fmtLength(m.horizontal_m)}`;
      return m.active ? s(m.points.length ? "hintHeight2" : "hintHeight1") : "";
    }
    return "";
  }

  // the map's labels: each vertex's running length (distance), the area at the polygon's centre, the height
  // halfway up its vertical
  function mapLabels() {
    const m = T.measure, pts = m.points, out = [];
    if (m.mode === "distance") {
      let run = 0;
      pts.forEach((p, i) => {
        if (i) run += inverse(pts[i - 1], p);
        if (i) out.push({ position: p, text: fmtLength(run) });
      });
    } else if (m.mode === "area" && m.area_m2 !== null) {
      const c = [0, 1, 2].map((k) => pts.reduce((acc, p) => acc + (p[k] || 0), 0) / pts.length);
      out.push({ position: c, text: `${num(m.area_m2, 1)} ${s("m2")}\n${num(m.area_m2 / (10000 / 15), 2)} ${s("mu")}${sep()}${num(m.area_m2 / 10000, 2)} ${s("ha")}` });
    } else if (m.mode === "height" && m.height_m !== null) {
      const [p, q2] = pts, lo = Math.min(p[2] || 0, q2[2] || 0);
      out.push({ position: [q2[0], q2[1], lo + m.height_m / 2], text: `${s("heightLabel")} ${fmtLength(m.height_m)}` });
      out.push({ position: [(p[0] + q2[0]) / 2, (p[1] + q2[1]) / 2, lo], text: `${s("horizontalLabel")} ${fmtLength(m.horizontal_m)}` });
    }
    return out;
  }

  let drawn = false;  // the overlay has layers
  function draw() {
    const m = T.measure;
    if (!m.mode || !m.points.length) {
      if (drawn) api.setDecoration(KEY, []);
      drawn = false;
      return;
    }
    drawn = true;
    const pts = m.points.map((p) => [p[0], p[1], p[2] || 0]);
    const layers = [];
    if (m.mode === "area" && pts.length >= 3) {
      layers.push(new deck.SolidPolygonLayer({ id: "measure-fill", data: [{ polygon: pts }], getPolygon: (d) => d.polygon,
        getFillColor: [...LINE, 50], pickable: false, parameters: ON_TOP }));
    }
    let path = pts;
    if (m.mode === "area" && pts.length >= 3 && !m.active) path = [...pts, pts[0]];
    if (m.mode === "height" && pts.length === 2) {
      const [lo, hi] = pts[0][2] <= pts[1][2] ? pts : [pts[1], pts[0]];
      path = [lo, [hi[0], hi[1], lo[2]], hi];  // the horizontal, then the vertical
      layers.push(new deck.PathLayer({ id: "measure-slant", data: [{ path: [lo, hi] }], getPath: (d) => d.path,
        getColor: [...LINE, 120], getWidth: 1.5, widthUnits: "pixels", pickable: false, parameters: ON_TOP }));
    }
    layers.push(new deck.PathLayer({ id: "measure-line", data: [{ path }], getPath: (d) => d.path, getColor: [...LINE, 255],
      getWidth: 3, widthUnits: "pixels", jointRounded: true, capRounded: true, pickable: false, parameters: ON_TOP }));
    if (m.active && preview && m.mode !== "height") {
      const rubber = m.mode === "area" && pts.length >= 2 ? [pts[pts.length - 1], preview, pts[0]] : [pts[pts.length - 1], preview];
      layers.push(new deck.PathLayer({ id: "measure-preview", data: [{ path: rubber }], getPath: (d) => d.path,
        getColor: [...LINE, 150], getWidth: 2, widthUnits: "pixels", pickable: false, parameters: ON_TOP }));
    }
    layers.push(new deck.ScatterplotLayer({ id: "measure-points", data: pts, getPosition: (d) => d, getRadius: 4,
      radiusUnits: "pixels", getFillColor: [255, 255, 255], stroked: true, getLineColor: [30, 30, 30], lineWidthUnits: "pixels",
      getLineWidth: 1.5, pickable: false, parameters: ON_TOP }));
    const text = mapLabels();
    if (text.length) {
      layers.push(new deck.TextLayer({ id: `measure-labels-${lang()}`, data: text, getPosition: (d) => d.position, getText: (d) => d.text,
        characterSet: "auto", fontFamily: FONT, getSize: 13, sizeUnits: "pixels", getColor: [255, 255, 255],
        background: true, getBackgroundColor: [16, 24, 36, 220], backgroundPadding: [5, 3],
        getTextAnchor: "start", getAlignmentBaseline: "center", getPixelOffset: [10, 0], pickable: false, parameters: ON_TOP }));
    }
    api.setDecoration(KEY, layers);
  }

  function showMeasure() {
    const m = T.measure;
    for (const [mode, b] of Object.entries(modeButtons)) {
      const on = m.active && m.mode === mode;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    }
    doneButton.hidden = !m.active;
    doneButton.disabled = !(m.mode === "distance" ? m.points.length >= 2 : m.mode === "area" ? m.points.length >= 3 : false);
    const text = summary();
    readout.hidden = !text;
    readoutText.textContent = text;
    draw();
  }

  // the controller without double-click zoom (a double-click ends the measure) and a crosshair, while measuring
  function takeMap(on) {
    if (on && !saved) {
      saved = { controller: api.deck.props.controller, getCursor: api.deck.props.getCursor };
      const base = saved.controller && typeof saved.controller === "object" ? saved.controller : {};
      api.deck.setProps({ controller: { ...base, doubleClickZoom: false }, getCursor: ({ isDragging }) => (isDragging ? "grabbing" : "crosshair") });
    } else if (!on && saved) {
      api.deck.setProps({ controller: saved.controller, getCursor: saved.getCursor });
      saved = null;
    }
  }

  function start(mode) {
    if (!modeButtons[mode]) throw new Error(`unknown measure mode ${mode}`);
    T.measure = { ...T.measure, mode, active: true, points: [] };
    preview = null;
    compute();
    takeMap(true);
    showMeasure();
  }
  function finish() {
    const m = T.measure;
    if (!m.active) return result();
    const enough = m.mode === "distance" ? 2 : m.mode === "area" ? 3 : 2;
    if (m.points.length < enough) return cancel();
    m.active = false;
    preview = null;
    takeMap(false);
    compute();
    showMeasure();
    return result();
  }
  function cancel() {
    T.measure = { ...T.measure, mode: null, active: false, points: [] };
    preview = null;
    compute();
    takeMap(false);
    showMeasure();
    return result();
  }

  // the 3D point under a pixel: on a 3D object (roof, wall, 3D tile, model, the terrain and what is draped on it)
  // at the depth it is drawn at, on the ground (z 0) on a flat layer or where nothing is picked. deck.gl reads the
  // depth back from its picking buffer, coarsely once the map is pitched (metres off on flat layers at 50°): the
  // horizontal position is taken where the pixel's ray meets the height found, and a flat layer's points are put on
  // the ground exactly.
  const SOLID = /Tile3D|Mesh|Scenegraph|PointCloud|Column|Hexagon|Terrain|Model|Component/i;
  // a layer draped on the terrain (rasters.js) is picked where it lies on it, at the terrain's height
  const draped = (l) => (l.props.extensions || []).some((x) => x.constructor.extensionName === "TerrainExtension" && x.opts.on);
  function solid(layer) {
    for (let l = layer; l; l = l.parent) {
      if (l.props.extruded || draped(l) || SOLID.test(l.constructor.layerName || l.constructor.name || "")) return true;
    }
    return false;
  }
  function pickPoint(x, y) {
    const viewport = api.deck.getViewports()[0];
    // a miss asked again: the first pick after the layers change on the terrain finds nothing (deck.gl 9.4's terrain
    // effect makes the draped layers' picking cover during that pick), the next one finds what is drawn
    const pick = () => api.deck.pickObject({ x, y, radius: 0, unproject3D: true });
    const hit = pick() || pick();
    if (hit && hit.layer && solid(hit.layer) && hit.coordinate && Number.isFinite(hit.coordinate[2])) {
      const raw = hit.coordinate[2];
      let z = raw;
      // a building's pick layer (viewer/deck.py: its footprint extruded from the ground to 0.3 m above the model's
      // roof) stands in for the model: a point on it is kept within the model's own extent, from its foot
      // (base_height) to its roof (base_height + height). The model floats at base_height over the flat map
      // (and the terrain lifts the pick layer): clicked at its foot or on its roof, the point is where it shows.
      const p = hit.object && hit.object.properties;
      if (hit.layer.id.endsWith("__pick") && p && Number.isFinite(Number(p.height))) {
        const base = Math.max(Number(p.base_height) || 0, 0);
        z = Math.min(Math.max(z, base), base + Number(p.height));
      }
      T.lastPick = { layer: hit.layer.id, id: p && p.id !== undefined ? p.id : null, z: raw };
      const [lon, lat] = viewport.unproject([x, y], { targetZ: z });
      return [lon, lat, z];
    }
    // a flat layer, or nothing (beyond the terrain, or the terrain off): the ground at z 0
    const [lon, lat] = viewport.unproject([x, y]);
    const p = hit && hit.object && hit.object.properties;
    T.lastPick = { layer: hit && hit.layer ? hit.layer.id : null, id: p && p.id !== undefined ? p.id : null, z: 0 };
    return [lon, lat, 0];
  }

  // a click on the map at (x, y) CSS pixels of the map: true when the measure took it
  function click(x, y) {
    const m = T.measure;
    if (!m.active) return false;
    T.clicks += 1;
    const p = pickPoint(x, y);
    const last = m.points[m.points.length - 1];
    if (last) {  // the clicks of a double-click: one point
      const viewport = api.deck.getViewports()[0];
      const [lx, ly] = viewport.project(last);
      if (Math.hypot(lx - x, ly - y) < 3) return true;
    }
    m.points.push(p);
    compute();
    if (m.mode === "height" && m.points.length === 2) return finish(), true;
    showMeasure();
    return true;
  }

  // --- the deck's events: the tool sees clicks first (this module loads last) ---------------------------
  const baseClick = api.deck.props.onClick;
  const baseHover = api.deck.props.onHover;
  const baseTooltip = api.deck.props.getTooltip;
  api.deck.setProps({
    onClick: (info, event) => {
      if (T.measure.active) { click(info.x, info.y); return true; }  // not passed on: no panel opens
      T.passed += 1;
      return baseClick ? baseClick(info, event) : undefined;
    },
    onHover: (info, event) => {
      if (T.measure.active && T.measure.points.length && T.measure.mode !== "height" && info.coordinate) {
        preview = [info.coordinate[0], info.coordinate[1], 0];
        if (!previewFrame) previewFrame = requestAnimationFrame(() => { previewFrame = 0; if (T.measure.active) draw(); });
      }
      return baseHover ? baseHover(info, event) : undefined;
    },
    getTooltip: (info) => (T.measure.active ? null : baseTooltip ? baseTooltip(info) : null),
  });
  document.getElementById("map").addEventListener("dblclick", (event) => {
    if (!T.measure.active || T.measure.mode === "height") return;
    event.preventDefault();
    finish();
  });
  document.addEventListener("keydown", (event) => {
    const typing = event.target && /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (typing) return;
    if (event.key === "Escape" && (T.measure.active || T.measure.mode)) cancel();
    else if ((event.key === "Backspace" || event.key === "Delete") && T.measure.active && T.measure.points.length) {
      T.measure.points.pop();
      compute();
      showMeasure();
      event.preventDefault();
    }
  });
  api.onLanguage.push(labels);

  // a measure of given points ([lon, lat] or [lon, lat, z], degrees and metres), shown as if clicked
  function measure(mode, points) {
    if (!modeButtons[mode]) throw new Error(`unknown measure mode ${mode}`);
    takeMap(false);
    preview = null;
    T.measure = { ...T.measure, mode, active: false, points: points.map((p) => [Number(p[0]), Number(p[1]), Number(p[2]) || 0]) };
    const out = compute();
    showMeasure();
    return out;
  }

  // --- export ------------------------------------------------------------------------------------------
  const pad2 = (n) => String(n).padStart(2, "0");
  const stamp = (d) => `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())}-${pad2(d.getHours())}${pad2(d.getMinutes())}`;
  const dateText = (d) => `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;

  // the deck's canvas onto a 2D canvas of w × h: drawn in the same task as a fresh frame (the WebGL drawing
  // buffer is not kept once the frame is shown); true when something was drawn
  function grab(w, h) {
    const source = api.deck.getCanvas ? api.deck.getCanvas() : api.deck.canvas;
    const shot = document.createElement("canvas");
    shot.width = w;
    shot.height = h;
    const g = shot.getContext("2d", { willReadFrequently: true });
    api.deck.redraw("cim:export");
    g.drawImage(source, 0, 0, w, h);
    const data = g.getImageData(0, 0, w, h).data;
    let lit = 0;
    for (let i = 3; i < data.length; i += 4 * 97) if (data[i] > 0) lit += 1;
    return { shot, blank: lit === 0 };
  }
  function nextFrame() {
    return new Promise((resolve) => {
      const base = api.deck.props.onAfterRender;
      const once = (context) => {
        if (base) base(context);
        api.deck.setProps({ onAfterRender: base });
        resolve();
      };
      api.deck.setProps({ onAfterRender: once });
      api.redraw();
    });
  }

  function drawNorth(g, cx, cy, r, bearing) {
    g.save();
    g.translate(cx, cy);
    g.fillStyle = "rgba(16, 24, 36, 0.85)";
    g.strokeStyle = "#34506f";
    g.lineWidth = 1.5;
    g.beginPath();
    g.arc(0, 0, r, 0, 2 * Math.PI);
    g.fill();
    g.stroke();
    g.rotate(rad(-bearing));
    const k = r / 20;
    g.fillStyle = "#e5483a";
    g.beginPath(); g.moveTo(0, -13 * k); g.lineTo(5 * k, 0); g.lineTo(-5 * k, 0); g.closePath(); g.fill();
    g.fillStyle = "#dfe6ef";
    g.beginPath(); g.moveTo(0, 13 * k); g.lineTo(5 * k, 0); g.lineTo(-5 * k, 0); g.closePath(); g.fill();
    g.fillStyle = "#ffffff";
    g.font = `bold ${Math.round(9 * k)}px ${FONT}`;
    g.textAlign = "center";
    g.textBaseline = "bottom";
    g.fillText(s("north"), 0, -13.5 * k);
    g.restore();
  }

  // the current view as a PNG data URL, with the title, the date, the scale bar and the north arrow on it.
  // options: title (the page's by default), scale (output pixels per CSS pixel, 1), download (save it as
  // cim-map-YYYYMMDD-HHMM.png; false)
  async function exportPng(options = {}) {
    const map = document.getElementById("map");
    const scale = Number(options.scale) > 0 ? Number(options.scale) : 1;
    const w = Math.round(map.clientWidth * scale), h = Math.round(map.clientHeight * scale);
    let { shot, blank } = grab(w, h);
    if (blank) {  // a frame of its own, read as it is drawn
      await nextFrame();
      ({ shot, blank } = grab(w, h));
    }
    const out = document.createElement("canvas");
    out.width = w;
    out.height = h;
    const g = out.getContext("2d");
    g.fillStyle = getComputedStyle(document.body).backgroundColor || "#0b1017";
    g.fillRect(0, 0, w, h);
    g.drawImage(shot, 0, 0);
    const k = scale;
    // the title and the date, top left
    const now = new Date();
    const title = options.title || api.config.title || document.title || api.t("title");
    const date = `${s("exported")} ${dateText(now)}`;
    g.font = `600 ${Math.round(18 * k)}px ${FONT}`;
    const tw = g.measureText(title).width;
    g.font = `${Math.round(12 * k)}px ${FONT}`;
    const dw = g.measureText(date).width;
    g.fillStyle = "rgba(16, 24, 36, 0.85)";
    g.fillRect(12 * k, 12 * k, Math.max(tw, dw) + 24 * k, 54 * k);
    g.fillStyle = "#ffffff";
    g.textBaseline = "top";
    g.textAlign = "left";
    g.font = `600 ${Math.round(18 * k)}px ${FONT}`;
    g.fillText(title, 24 * k, 20 * k);
    g.fillStyle = "#b9c8d8";
    g.font = `${Math.round(12 * k)}px ${FONT}`;
    g.fillText(date, 24 * k, 44 * k);
    // the north arrow, top right
    const view = api.viewState;
    const arrow = { x: w - 36 * k, y: 36 * k, r: 22 * k };
    drawNorth(g, arrow.x, arrow.y, arrow.r, view.bearing || 0);
    // the scale bar, bottom left: the same round length as on the map, in the image's pixels
    const mpp = metresPerPixel(view) / scale;
    const { metres, pixels } = niceScale(mpp, 120 * k);
    const bar = { x: Math.round(24 * k), y: Math.round(h - 26 * k), width: Math.round(pixels), height: Math.round(6 * k) };
    const label = scaleText(metres);
    g.font = `${Math.round(12 * k)}px ${FONT}`;
    g.fillStyle = "rgba(16, 24, 36, 0.85)";
    g.fillRect(bar.x - 10 * k, bar.y - 24 * k, Math.max(bar.width, g.measureText(label).width) + 20 * k, 38 * k);
    g.fillStyle = "#ffffff";
    g.textBaseline = "bottom";
    g.fillText(label, bar.x, bar.y - 4 * k);
    g.fillStyle = "#1d2a3b";
    g.fillRect(bar.x - 1, bar.y - 1, bar.width + 2, bar.height + 2);
    g.fillStyle = "#ffffff";
    g.fillRect(bar.x, bar.y, bar.width, bar.height);
    const url = out.toDataURL("image/png");
    const filename = `cim-map-${stamp(now)}.png`;
    T.export = { width: w, height: h, filename, title, blank, scaleBar: { ...bar, metres, pixels }, north: arrow,
                 metresPerPixel: mpp, bytes: url.length };
    if (options.download) {
      const a = document.createElement("a");
      a.href = url;
      a.download = filename;
      document.body.append(a);
      a.click();
      a.remove();
    }
    return url;
  }

  api.tools = { measure, exportPng, start, finish, cancel, click, pickPoint,
                geodesy: { inverse, polygonArea, metresPerPixel, niceScale } };
  labels();
})();
