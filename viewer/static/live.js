// Live overlays on the viewer: sensors coloured by status (open alarms pulse),
// cameras with their view cones (a click plays the stream), tickets coloured by
// their 10-30-24 stage (overdue ones ringed in red), and counts per street,
// community or grid. First paint from the snapshots (/live/snapshot/...), then
// WebSocket deltas (/live/stream); after a lost connection (a server restart)
// it reconnects by itself and repaints from the snapshots.
(() => {
  "use strict";
  const api = window.cimViewer;
  const live = { ready: false, connected: false, sensors: 0, cameras: 0, tickets: 0, deltas: 0, reconnects: 0,
                 alarmIds: [], lastAlarm: null, errors: [] };
  window.__cimLive = live;
  if (!api || !api.liveKeys.size) return;
  // what other modules read of the live state: the tickets by id, and each new alarm (with its sensor's place)
  const feed = { tickets: () => tickets, onAlarm: [] };
  api.liveFeed = feed;
  const keys = api.liveKeys;

  const t = api.t;
  // colours by status name: the codes that stand for the names (and the open-alarm bit) come from the
  // snapshot's header, so the server may add or renumber statuses; a status without a colour here is drawn as none
  const STATUS_COLOURS = { none: [120, 130, 145, 160], normal: [60, 200, 120, 220], alarm: [240, 50, 40, 255],
                           fault: [250, 160, 40, 240], offline: [90, 95, 105, 200] };
  const STAGE_COLOURS = { acknowledge: [250, 210, 60, 230], contact: [250, 140, 50, 230], resolve: [90, 160, 250, 230],
                          closed: [140, 150, 160, 160] };
  let sensors = null;  // {ids, positions (Float64Array), value, code, category, categories, version, status}
  let cameras = null;
  let tickets = null;  // {id: {...}} by id
  let socket = null;
  let retry = 1000;
  let opened = false;  // a later open is a reconnection: repaint from the snapshots

  // --- snapshots ---------------------------------------------------------------------------
  // what each code byte of a snapshot (and of the deltas of its version) means, from the snapshot's header
  // (status_codes: name -> code, alarm_bit): its status name and colour, an open alarm named and drawn as one
  function statusTable(header) {
    const alarmBit = header.alarm_bit;
    const byCode = new Map(Object.entries(header.status_codes).map(([name, code]) => [code, name]));
    const name = [], colour = [];
    for (let c = 0; c < 256; c++) {
      name.push((c & alarmBit) ? "alarm" : byCode.get(c & ~alarmBit));
      colour.push(Object.hasOwn(STATUS_COLOURS, name[c]) ? STATUS_COLOURS[name[c]] : STATUS_COLOURS.none);
    }
    return { alarmBit, name, colour };
  }

  async function loadSensors() {
    const buffer = await (await fetch("/live/snapshot/sensors")).arrayBuffer();
    const headerLength = new DataView(buffer).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
    const base = 4 + headerLength;
    const col = (name, Type) => {
      const [offset, size] = header.columns[name];
      return new Type(buffer.slice(base + offset, base + offset + size));
    };
    const [w, s, e, n] = header.extent;
    const lon = col("lon", Uint16Array), lat = col("lat", Uint16Array);
    const positions = new Float64Array(header.count * 2);
    for (let i = 0; i < header.count; i++) {
      positions[2 * i] = w + (lon[i] / 65535) * (e - w);
      positions[2 * i + 1] = s + (lat[i] / 65535) * (n - s);
    }
    const ids = new TextDecoder().decode(col("ids", Uint8Array)).split("\n");
    sensors = { ids, positions, value: col("value", Float32Array), code: col("code", Uint8Array),
                category: col("category", Uint8Array), categories: header.categories, version: header.version,
                status: statusTable(header), colours: new Uint8Array(header.count * 4) };
    for (let i = 0; i < header.count; i++) paintSensor(i);
    findAlarmed();
    // one data object per snapshot: a delta repaints colours in place and bumps the update trigger, so
    // deck.gl uploads the colours again, never the positions
    sensors.data = { length: header.count, attributes: {
      getPosition: { value: sensors.positions, size: 2 },
      getFillColor: { value: sensors.colours, size: 4, normalized: true } } };
    live.sensors = header.count;
  }

  function paintSensor(i) {
    sensors.colours.set(sensors.status.colour[sensors.code[i]], 4 * i);
  }

  // the sensors with an open alarm, looked for when codes change (not on every pulse of their rings)
  function findAlarmed() {
    const alarmed = [], alarmBit = sensors.status.alarmBit;
    for (let i = 0; i < sensors.ids.length; i++) if (sensors.code[i] & alarmBit) alarmed.push(i);
    sensors.alarmed = alarmed;
    live.alarmIds = alarmed.map((i) => sensors.ids[i]);
  }

  async function loadCameras() {
    const c = await (await fetch("/live/snapshot/cameras")).json();
    const cones = [];
    for (let i = 0; i < c.count; i++) {
      const range = c.range_m[i] || 60, fov = c.fov[i] || 60, heading = c.heading[i] || 0;
      const ring = [[c.lon[i], c.lat[i]]];
      for (let k = 0; k <= 8; k++) {
        const a = ((heading - fov / 2 + (fov * k) / 8) * Math.PI) / 180;  // compass bearing: 0 north, clockwise
        ring.push([c.lon[i] + (range * Math.sin(a)) / (111320 * Math.cos((c.lat[i] * Math.PI) / 180)),
                   c.lat[i] + (range * Math.cos(a)) / 110540]);
      }
      cones.push({ index: i, polygon: ring });
    }
    cameras = { ...c, cones };
    live.cameras = c.count;
  }

  async function loadTickets() {
    const c = await (await fetch("/live/snapshot/tickets")).json();
    tickets = {};
    for (let i = 0; i < c.count; i++) {
      tickets[c.id[i]] = { id: c.id[i], channel: c.channel[i], category: c.category[i], lon: c.lon[i], lat: c.lat[i],
                           stage: c.stage[i], due_at: c.due_at[i] };
    }
    live.tickets = c.count;
  }

  // --- layers --------------------------------------------------------------------------------
  function pulse() {
    return 0.5 + 0.5 * Math.sin(performance.now() / 250);
  }

  function sensorLayers() {
    const p = pulse();
    return [
      new deck.ScatterplotLayer({
        id: "live-sensors", data: sensors.data,
        radiusUnits: "pixels", getRadius: 3, radiusMinPixels: 2, pickable: true,
        updateTriggers: { getFillColor: live.deltas },
      }),
      new deck.ScatterplotLayer({
        id: "live-alarms", data: sensors.alarmed, getPosition: (i) => [sensors.positions[2 * i], sensors.positions[2 * i + 1]],
        radiusUnits: "pixels", getRadius: 8 + 10 * p, stroked: true, filled: true, lineWidthUnits: "pixels",
        getLineWidth: 2, getLineColor: [255, 60, 40, 255], getFillColor: [255, 60, 40, Math.round(40 + 80 * p)],
        pickable: true, updateTriggers: { getRadius: p, getFillColor: p },
      }),
    ];
  }

  function cameraLayers() {
    return [
      new deck.SolidPolygonLayer({ id: "live-camera-cones", data: cameras.cones, getPolygon: (d) => d.polygon,
        getFillColor: (d) => cameras.status[d.index] === "online" ? [250, 210, 60, 70] : [150, 150, 150, 50],
        pickable: true }),
      new deck.ScatterplotLayer({ id: "live-cameras", data: cameras.cones, getPosition: (d) => d.polygon[0],
        radiusUnits: "pixels", getRadius: 5, getFillColor: [250, 210, 60, 255], stroked: true, getLineColor: [30, 30, 30],
        lineWidthUnits: "pixels", getLineWidth: 1, pickable: true }),
    ];
  }

  function ticketLayers() {
    const now = Date.now() / 1000;
    const data = Object.values(tickets);
    const overdue = (d) => d.stage !== "closed" && now > d.due_at;
    live.overdue = data.filter(overdue).length;
    return [new deck.ScatterplotLayer({
      id: "live-tickets", data, getPosition: (d) => [d.lon, d.lat], radiusUnits: "pixels",
      getRadius: (d) => (overdue(d) ? 7 : 5), getFillColor: (d) => STAGE_COLOURS[d.stage] || STAGE_COLOURS.closed,
      stroked: true, lineWidthUnits: "pixels", getLineWidth: (d) => (overdue(d) ? 3 : 1),
      getLineColor: (d) => (overdue(d) ? [255, 40, 40, 255] : [20, 20, 20, 200]), pickable: true,
      updateTriggers: { getRadius: Math.floor(now / 10), getLineWidth: Math.floor(now / 10),
                        getLineColor: Math.floor(now / 10) },
    })];
  }

  // only the overlays named are rebuilt: the pulse of the alarms must not recompute every ticket
  function draw(which = ["sensors", "cameras", "tickets"]) {
    if (which.includes("sensors") && sensors && keys.has("sensors")) api.setOverlay("sensors", sensorLayers());
    if (which.includes("cameras") && cameras && keys.has("cameras")) api.setOverlay("cameras", cameraLayers());
    if (which.includes("tickets") && tickets && keys.has("tickets")) api.setOverlay("tickets", ticketLayers());
  }

  // --- tooltips and the camera player ------------------------------------------------------------
  const baseTooltip = api.tooltip;
  const row = (k, v) => `<tr><th>${api.escapeHtml(k)}</th><td>${api.escapeHtml(v)}</td></tr>`;
  function liveTooltip(info) {
    const id = info.layer && info.layer.id;
    if (id === "live-sensors" || id === "live-alarms") {
      const i = id === "live-sensors" ? info.index : info.object;
      if (i === undefined || i < 0) return null;
      const status = sensors.status.name[sensors.code[i]];
      const value = Number.isNaN(sensors.value[i]) ? "—" : sensors.value[i].toFixed(3);
      return { className: "cim-tooltip", html: `<div class="tt-title">${api.escapeHtml(sensors.ids[i])}</div><table>` +
        row(sensors.categories[sensors.category[i]], t("status_" + status) ?? status) + row(t("value"), value) +
        "</table>" };
    }
    if (id === "live-tickets" && info.object) {
      const d = info.object;
      return { className: "cim-tooltip", html: `<div class="tt-title">${api.escapeHtml(d.id)}</div><table>` +
        row(t("stage_" + d.stage), d.category) + row(t("due"), new Date(d.due_at * 1000).toLocaleString()) + "</table>" };
    }
    if ((id === "live-cameras" || id === "live-camera-cones") && info.object) {
      const i = info.object.index;
      return { className: "cim-tooltip", html: `<div class="tt-title">${api.escapeHtml(cameras.name[i] || cameras.id[i])}</div>` };
    }
    return null;
  }
  // what a live object clicked is, for the parent (cim:clicked): its layer, id and a few attributes that are no
  // one's personal data (a ticket's place and address are not among them)
  function liveObject(info) {
    const id = info.layer && info.layer.id;
    if ((id === "live-sensors" || id === "live-alarms") && sensors) {
      const i = id === "live-alarms" ? info.object : info.index;
      if (!(i >= 0)) return null;
      const category = sensors.categories ? sensors.categories[sensors.category[i]] : undefined;
      return { layer: "sensors", id: sensors.ids[i], attributes: { category, status: sensors.status.name[sensors.code[i]] } };
    }
    if (id === "live-tickets" && info.object) {
      const d = info.object;
      return { layer: "tickets", id: d.id, attributes: { category: d.category, channel: d.channel, stage: d.stage, overdue: d.overdue } };
    }
    if ((id === "live-cameras" || id === "live-camera-cones") && info.object) {
      const i = info.object.index;
      return { layer: "cameras", id: cameras.id[i], attributes: { name: cameras.name[i] } };
    }
    return null;
  }
  const baseClick = api.deck.props.onClick;
  api.deck.setProps({
    getTooltip: (info) => liveTooltip(info) || baseTooltip(info),
    onClick: (info, event) => {
      const id = info.layer && info.layer.id;
      const picked = liveObject(info);
      if (picked) {
        window.__cimResult.clicked = picked;
        api.notifyParent("cim:clicked", picked);
      } else if (baseClick) {
        baseClick(info, event);
      }
      if ((id === "live-cameras" || id === "live-camera-cones") && info.object) openCamera(info.object.index);
    },
  });

  let hls = null;
  function openCamera(i) {
    const panel = document.getElementById("camera");
    const video = document.getElementById("camera-video");
    const note = document.getElementById("camera-note");
    panel.hidden = false;
    document.getElementById("camera-title").textContent = `${t("camera")} · ${cameras.name[i] || cameras.id[i]}`;
    document.getElementById("camera-close").textContent = t("close");
    note.textContent = "";
    if (hls) { hls.destroy(); hls = null; }
    const url = cameras.stream_url[i];
    live.playing = { id: cameras.id[i], url };
    if (!url) { note.textContent = t("noStream"); return; }
    if (window.Hls && window.Hls.isSupported()) {
      hls = new window.Hls({ enableWorker: false });  // no worker: nothing fetched from elsewhere
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (data.fatal) { note.textContent = t("noStream"); live.playing.error = data.details; }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else {
      video.src = url;  // native HLS (Safari)
    }
    video.play().catch(() => {});
  }
  window.cimLive = { openCamera: (cameraId) => openCamera(cameras.id.indexOf(cameraId)) };
  document.getElementById("camera-close").addEventListener("click", () => {
    document.getElementById("camera").hidden = true;
    if (hls) { hls.destroy(); hls = null; }
    document.getElementById("camera-video").pause();
  });

  // --- counts per area ------------------------------------------------------------------------------
  const levelSelect = document.getElementById("counts-level");
  function labels() {
    document.getElementById("live").hidden = false;
    document.getElementById("live-title").textContent = t("live");
    document.getElementById("live-status").textContent = live.connected ? t("liveConnected") : t("liveReconnecting");
    document.getElementById("live-status").className = live.connected ? "up" : "down";
    document.getElementById("counts-label").textContent = t("counts");
    const current = levelSelect.value || "street";
    levelSelect.replaceChildren(...["street", "community", "grid"].map((level) => {
      const o = document.createElement("option");
      o.value = level;
      o.textContent = t(level);
      o.selected = level === current;
      return o;
    }));
    document.querySelector("#counts thead").innerHTML = "<tr>" + ["area", "sensors", "alarms", "offline", "openTickets",
      "overdue"].map((k) => `<th>${api.escapeHtml(t(k))}</th>`).join("") + "</tr>";
  }
  async function refreshCounts() {
    try {
      const c = await (await fetch(`/live/counts?level=${encodeURIComponent(levelSelect.value || "street")}`)).json();
      const body = document.querySelector("#counts tbody");
      body.replaceChildren(...c.areas.filter((a) => a.area).map((a) => {
        const tr = document.createElement("tr");
        tr.innerHTML = [a.area, a.sensors, a.alarms, a.offline, a.open_tickets, a.overdue_tickets]
          .map((v, k) => `<td class="${k && v && k !== 1 ? "hot" : ""}">${api.escapeHtml(v)}</td>`).join("");
        return tr;
      }));
      live.counts = c.areas;
    } catch (err) { live.errors.push(`counts: ${err}`); }
  }
  levelSelect.addEventListener("change", refreshCounts);
  api.onLanguage.push(() => { labels(); draw(); });

  // --- the stream -------------------------------------------------------------------------------------
  function applyDelta(m) {
    live.deltas += 1;
    if (m.sensors && sensors && m.version === sensors.version) {  // codes as in that version's snapshot header
      const { i, value, code } = m.sensors;
      const alarmBit = sensors.status.alarmBit;
      let flipped = false;  // an alarm opened or closed: only then are all sensors scanned for the open ones
      for (let k = 0; k < i.length; k++) {
        sensors.value[i[k]] = value[k] === null ? NaN : value[k];
        flipped ||= ((sensors.code[i[k]] ^ code[k]) & alarmBit) !== 0;
        sensors.code[i[k]] = code[k];
        paintSensor(i[k]);
      }
      if (flipped) findAlarmed();
    }
    for (const a of m.alarms || []) {
      live.lastAlarm = a;
      if (a.cleared_at || !sensors || a.i === undefined) continue;
      const alarm = { ...a, lon: sensors.positions[2 * a.i], lat: sensors.positions[2 * a.i + 1] };
      for (const f of feed.onAlarm) f(alarm);  // screen.js: its list of the latest alerts
    }
    for (const d of m.tickets || []) if (tickets) tickets[d.id] = d;
    if (m.alarms || m.tickets) { clearTimeout(applyDelta.counts); applyDelta.counts = setTimeout(refreshCounts, 500); }
    draw([...(m.sensors || m.alarms ? ["sensors"] : []), ...(m.tickets ? ["tickets"] : [])]);
  }

  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/live/stream`;
    socket = new WebSocket(url);
    socket.onopen = async () => {
      retry = 1000;
      try {
        if (opened) {
          // the server may have restarted (versions count from 1 again, codes may differ): its sensor deltas wait
          // for its snapshot, never decoded with the old header
          if (sensors) sensors.version = null;
          live.reconnects += 1;
          await Promise.all([loadSensors(), loadCameras(), loadTickets()]);
        }
        opened = true;
        live.connected = true;
        labels();
        draw();
        refreshCounts();
      } catch (err) { live.errors.push(String(err)); }
    };
    socket.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "delta") applyDelta(m);
      else if (m.type === "reload") loadSensors().then(() => draw(["sensors"]));
    };
    socket.onclose = () => {
      live.connected = false;
      labels();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }

  (async () => {
    try {
      await Promise.all([loadSensors(), loadCameras(), loadTickets()]);
      labels();
      draw();
      await refreshCounts();
      connect();
      live.ready = true;
      setInterval(() => { if (sensors && live.alarmIds.length && api.isVisible("sensors")) draw(["sensors"]); }, 100);  // pulse
      setInterval(() => { draw(["tickets"]); refreshCounts(); }, 10000);  // stages become overdue as time passes
    } catch (err) {
      live.errors.push(String(err));
    }
  })();
})();
