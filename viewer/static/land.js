// Land supervision (土地监管) on the viewer: the parcels of the last `cim land check`
// coloured by verdict (合规 green, 预警 amber, 违规 red), a list with filters and
// counts, and one parcel's detail: its figures against the limits, its findings
// with their evidence and follow-up state (land supervisors change it), and the
// offending buildings extruded in red from the detail's own footprints (so the
// highlight works over whichever 3D model is loaded: white model, oblique, BIM).
// Nothing is fetched until the panel is switched on (its checkbox, `layers=...,land`
// in the URL, or a dashboard's message): a server where nothing was checked
// answers 404, and the panel then only says 尚未核查.
// A dashboard may send {type: "cim:land.select", parcel_id}; the viewer tells it
// {type: "cim:land.selected", parcel_id, verdict} (see viewer.js).
(() => {
  "use strict";
  const api = window.cimViewer;
  // what the tests read: checked (null: not loaded yet), failed, parcels, shown, selected, highlighted, errors
  const land = { checked: null, failed: false, parcels: 0, shown: 0, selected: null, highlighted: 0, errors: [] };
  window.__cimLand = land;
  if (!api) return;
  const { t, escapeHtml: esc } = api;
  const KEY = "land";  // the land layer's key among the viewer's layers (and in the URL's layers=)
  // {verdicts: {合规: "compliant"...}, states: {待核查: "pending"...}, kinds, editors (roles), maxNote}
  const rules = api.config.land;
  const COLOURS = { compliant: [60, 200, 120], warning: [245, 170, 40], violation: [235, 60, 50] };
  const FALSE_POSITIVE = Object.keys(rules.states).find((s) => rules.states[s] === "false_positive");
  const LIST_MAX = 300;  // list items drawn at most (the map shows every parcel that matches)
  const $ = (id) => document.getElementById(id);

  let features = [];  // the checked parcels (GeoJSON features, summary as properties)
  let matching = { type: "FeatureCollection", features: [] };  // those the filters let through
  let detail = null;  // the selected parcel in full
  let offenders = { type: "FeatureCollection", features: [] };  // its offending buildings' footprints
  let me = null;  // GET /auth/me: who is signed in
  let loading = null;  // the load in progress (or done)
  let version = 0;  // bumped when a parcel's verdict changes: deck.gl recolours
  let asked = 0;  // the latest selection asked for: older answers are dropped
  const filters = { verdict: "", finding: "", street: "" };

  // --- helpers ---------------------------------------------------------------------------------
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k]);
  const locale = () => (document.documentElement.lang === "en" ? "en" : "zh-CN");
  const num = (v, digits = 2) => (v === null || v === undefined ? "—"
    : Number(v).toLocaleString(locale(), { maximumFractionDigits: digits }));
  const verdictKey = (v) => rules.verdicts[v] || "compliant";
  const badge = (v) => `<span class="verdict ${verdictKey(v)}">${esc(t("verdict_" + verdictKey(v)))}</span>`;
  const kindTitle = (kind) => t("kind_" + kind) || kind;
  const stateTitle = (s) => t("state_" + rules.states[s]) || s;
  const isOpen = (f) => !f.closed_at && f.state !== FALSE_POSITIVE;
  const mayEdit = () => !!me && me.roles.some((r) => rules.editors.includes(r));

  // --- loading -----------------------------------------------------------------------------------
  function load() {
    loading ||= (async () => {
      land.failed = false;
      const [parcels, who] = await Promise.all([fetch("/land/parcels?format=geojson&limit=10000"), fetch("/auth/me")]);
      me = who.ok ? await who.json() : null;
      if (parcels.status === 404) features = [];  // nothing checked yet
      else if (!parcels.ok) throw new Error(`/land/parcels: HTTP ${parcels.status}`);
      else features = (await parcels.json()).features;
      land.checked = parcels.ok;
      land.parcels = features.length;
    })().catch((err) => {
      land.errors.push(String(err));
      land.failed = true;
      loading = null;  // tried again when the panel is next opened
    });
    return loading;
  }

  // --- the map -----------------------------------------------------------------------------------
  function draw() {
    const selected = land.selected;
    const colour = (f) => COLOURS[verdictKey(f.properties.verdict)];
    const layers = [new deck.GeoJsonLayer({
      id: "land-parcels", data: matching, filled: true, stroked: true, pickable: true,
      autoHighlight: true, highlightColor: [255, 255, 255, 50],
      getFillColor: (f) => [...colour(f), f.properties.parcel_id === selected ? 130 : 70],
      getLineColor: (f) => [...colour(f), 235],
      getLineWidth: (f) => (f.properties.parcel_id === selected ? 4 : 1.5), lineWidthUnits: "pixels",
      updateTriggers: { getFillColor: [version, selected], getLineColor: version, getLineWidth: selected },
    })];
    if (offenders.features.length) {
      // drawn through the 3D model (its depth test always passes): seen whichever model covers the buildings.
      // (depthWriteEnabled: false would stay set for the next frame's clear in luma.gl 9: layers then vanish)
      layers.push(new deck.GeoJsonLayer({
        id: "land-buildings", data: offenders, extruded: true, wireframe: true, pickable: true,
        getElevation: (f) => (f.properties.height || 3) + 0.5, getFillColor: [255, 60, 40, 110],
        getLineColor: [255, 215, 80, 255], parameters: { depthCompare: "always" },
      }));
    }
    api.setOverlay(KEY, layers);
  }

  function refilter() {
    const ok = (p) => (!filters.verdict || p.verdict === filters.verdict) && (!filters.street || p.street === filters.street)
      && (!filters.finding || p.findings.includes(filters.finding));
    matching = { type: "FeatureCollection", features: features.filter((f) => ok(f.properties)) };
    land.shown = matching.features.length;
  }

  // --- the panel: counts, filters, list ------------------------------------------------------------
  function options(select, first, values) {
    const current = select.value;
    select.replaceChildren(...[["", first], ...values].map(([value, text]) => new Option(text, value)));
    select.value = values.some(([v]) => v === current) ? current : "";
  }

  function panel() {
    $("land-title").textContent = t("land");
    $("land-export-label").textContent = t("landExport");
    const visible = api.isVisible(KEY);
    $("land-toggle").checked = visible;
    $("land-body").hidden = !visible;
    $("land-detail").hidden = !visible || !detail;
    const tools = $("land-tools");
    tools.hidden = !land.checked;
    $("land-status").textContent = land.failed ? t("landFailed") : land.checked === null ? t("landLoading")
      : land.checked ? "" : t("landNotChecked");
    if (!land.checked) { $("land-counts").textContent = ""; return; }
    const count = (test) => features.filter((f) => test(f.properties)).length;
    const verdicts = Object.keys(rules.verdicts);
    $("land-counts").innerHTML = verdicts.map((v) =>
      `<span class="dot ${verdictKey(v)}"></span>${count((p) => p.verdict === v)}`).join(" ");
    options($("land-verdict"), t("landAllVerdicts"),
      verdicts.map((v) => [v, `${t("verdict_" + verdictKey(v))} (${count((p) => p.verdict === v)})`]));
    options($("land-finding"), t("landAllFindings"), rules.kinds
      .map((k) => [k, count((p) => p.findings.includes(k))]).filter(([, n]) => n)
      .map(([k, n]) => [k, `${kindTitle(k)} (${n})`]));
    const streets = [...new Set(features.map((f) => f.properties.street).filter(Boolean))].sort((a, b) => a.localeCompare(b, "zh-CN"));
    options($("land-street"), t("landAllStreets"), streets.map((s) => [s, `${s} (${count((p) => p.street === s)})`]));
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    $("land-xlsx").href = `/land/parcels?format=xlsx&limit=10000&${query}`;
    $("land-csv").href = `/land/parcels?format=csv&limit=10000&${query}`;
    list();
  }

  function list() {
    const ul = $("land-list");
    $("land-shown").textContent = fill(t("landShown"), { shown: land.shown, n: land.parcels });
    const shown = matching.features.slice(0, LIST_MAX).map((f) => {
      const p = f.properties;
      const li = document.createElement("li");
      li.innerHTML = `<button type="button">${badge(p.verdict)} <span class="pid"></span> <span class="street"></span>
        <span class="kinds"></span></button>`;
      li.dataset.parcel = p.parcel_id;
      li.classList.toggle("selected", p.parcel_id === land.selected);
      li.querySelector(".pid").textContent = p.parcel_id;
      li.querySelector(".street").textContent = [p.street, p.community].filter(Boolean).join(" · ");
      li.querySelector(".kinds").textContent = p.findings.map(kindTitle).join("、");
      li.querySelector("button").addEventListener("click", () => select(p.parcel_id));
      return li;
    });
    if (!matching.features.length) shown.push(Object.assign(document.createElement("li"), { textContent: t("landNone") }));
    if (matching.features.length > LIST_MAX) {
      shown.push(Object.assign(document.createElement("li"),
        { className: "more", textContent: fill(t("landMore"), { n: matching.features.length - LIST_MAX }) }));
    }
    ul.replaceChildren(...shown);
  }

  // --- one parcel ----------------------------------------------------------------------------------
  async function select(parcelId, { fly = true } = {}) {
    const mine = ++asked;
    if (!api.isVisible(KEY)) api.setLayerVisible(KEY, true);  // a dashboard's or a link's selection opens the panel
    await load();
    if (!land.checked) return;
    const r = await fetch(`/land/parcels/${encodeURIComponent(parcelId)}`);
    if (mine !== asked) return;
    if (!r.ok) { land.errors.push(`parcel ${parcelId}: HTTP ${r.status}`); return; }
    detail = await r.json();
    land.selected = detail.parcel_id;
    renew(detail);
    if (fly) api.flyTo(detail.bbox);
    showDetail();
    panel();
    draw();
    api.notifyParent("cim:land.selected", { parcel_id: detail.parcel_id, verdict: detail.verdict });
  }

  // the parcel's summary on the map and in the list as the detail has it now (after a state change);
  // and its offending buildings: those that its open findings' evidence names
  function renew(d) {
    const f = features.find((x) => x.properties.parcel_id === d.parcel_id);
    if (f) {
      f.properties.verdict = d.verdict;
      f.properties.findings = [...new Set(d.findings.filter(isOpen).map((x) => x.kind))].sort();
      version += 1;
      refilter();
    }
    const named = new Set(d.findings.filter(isOpen)
      .flatMap((x) => (x.evidence && x.evidence.buildings) || []).map((b) => `${b.layer}/${b.fid}`));
    offenders = { type: "FeatureCollection", features: d.buildings
      .filter((b) => b.geometry && named.has(`${b.layer}/${b.fid}`))
      .map(({ geometry, ...properties }) => ({ type: "Feature", geometry, properties })) };
    land.highlighted = offenders.features.length;
  }

  function unselect() {
    asked += 1;
    detail = null;
    land.selected = null;
    offenders = { type: "FeatureCollection", features: [] };
    land.highlighted = 0;
    panel();
    draw();
  }

  function figures(d) {
    const open = new Set(d.findings.filter(isOpen).map((f) => f.kind));
    const given = (v, text) => (v === null || v === undefined ? "—" : text);
    const pct = (v) => given(v, `${num(v * 100, 1)}%`);
    const metres = (v) => given(v, `${num(v, 1)} ${t("unit_m")}`);
    const rows = [
      [t("landFar"), num(d.far, 3), num(d.limits.approved_far, 3), "far_exceeded"],
      [t("landCoverage"), pct(d.coverage), pct(d.limits.coverage), "coverage_exceeded"],
      [t("landHeight"), metres(d.max_height), metres(d.limits.height_limit), "height_exceeded"],
      [t("landBuildingCount"), num(d.building_count, 0), "", ""],
      [t("landArea"), given(d.area_m2, `${num(d.area_m2, 0)} ${t("unit_m2")}`), "", ""],
    ];
    return `<table class="figures"><thead><tr><th></th><th>${esc(t("landValue"))}</th><th>${esc(t("landLimit"))}</th></tr>
      </thead><tbody>${rows.map(([label, value, limit, kind]) => `<tr><th>${esc(label)}</th>
      <td class="${open.has(kind) ? "over" : ""}">${esc(value)}</td><td>${esc(limit)}</td></tr>`).join("")}</tbody></table>`;
  }

  function evidence(f) {
    const ev = f.evidence || {};
    const percent = f.kind === "coverage_exceeded";
    const unit = percent ? "%" : ev.unit ? ` ${t("unit_" + ev.unit) || ev.unit}` : "";
    const value = (v) => (percent ? num(v * 100, 1) : num(v)) + unit;
    const parts = [];
    if ((ev.value ?? ev.days) !== undefined) parts.push(`${t("landValue")} ${value(ev.value ?? ev.days)}`);
    if (ev.limit !== undefined && ev.limit !== null) parts.push(`${t("landLimit")} ${value(ev.limit)}`);
    for (const date of [ev.start_deadline, ev.completion_deadline]) if (date) parts.push(date);
    const buildings = ev.buildings || [];
    const shown = buildings.slice(0, 8).map((b) => {
      const extra = f.kind === "outside_parcel" ? `${num(b.outside_m2)} ${t("unit_m2")}`
        : b.overlap_m2 !== undefined ? `${num(b.overlap_m2)} ${t("unit_m2")}` : `${num(b.height, 1)} ${t("unit_m")}`;
      return `${b.name || b.id} (${extra})`;
    });
    if (buildings.length > 8) shown.push(fill(t("landAndMore"), { n: buildings.length - 8 }));
    return `<div class="evidence">${esc(parts.join(" · "))}</div>` + (shown.length
      ? `<div class="evidence buildings">${esc(t("landBuildings"))}: ${esc(shown.join("、"))}</div>` : "");
  }

  function finding(f) {
    const li = document.createElement("li");
    li.className = "finding" + (f.closed_at ? " closed" : "");
    li.dataset.finding = f.id;
    li.dataset.kind = f.kind;
    li.dataset.state = isOpen(f) ? "open" : "done";
    const when = (at) => (at ? new Date(at).toLocaleString(locale()) : "");
    const last = f.state_at ? `<div class="by">${esc([f.state_by, when(f.state_at), f.note].filter(Boolean).join(" · "))}</div>` : "";
    const history = (f.history || []).map((h) => `<li>${esc([when(h.at), t("event_" + h.event) || h.event, stateTitle(h.state),
      h.actor, h.note].filter(Boolean).join(" · "))}</li>`).join("");
    li.innerHTML = `<div class="head"><span class="title"></span> <span class="verdict ${verdictKey(f.severity)}"></span>
      <span class="state"></span></div>${evidence(f)}${last}
      <div class="change"><select class="state-select"></select><input class="note" maxlength="${rules.maxNote}">
      <button type="button" class="save"></button></div><div class="msg" role="status"></div>
      ${history ? `<details><summary>${esc(t("landHistory"))}</summary><ul>${history}</ul></details>` : ""}`;
    li.querySelector(".title").textContent = kindTitle(f.kind);
    li.querySelector(".head .verdict").textContent = t("verdict_" + verdictKey(f.severity));
    li.querySelector(".head .state").textContent = f.closed_at ? `${stateTitle(f.state)} · ${t("landClosed")}` : stateTitle(f.state);
    const select = li.querySelector(".state-select");
    select.replaceChildren(...Object.keys(rules.states).map((s) => new Option(stateTitle(s), s, false, s === f.state)));
    const note = li.querySelector(".note");
    note.placeholder = t("landNote");
    const save = li.querySelector(".save");
    save.textContent = t("landSave");
    save.addEventListener("click", () => changeState(f.id, select.value, note.value, li));
    return li;
  }

  function showDetail() {
    const box = $("land-detail");
    if (!detail) { box.hidden = true; return; }
    const d = detail;
    const who = !me ? "" : me.via === "anonymous" ? t("landAnonymous") : `${t("landUser")}: ${me.name}`;
    box.innerHTML = `<header><h1><span class="pid"></span> ${badge(d.verdict)}</h1><button type="button" class="close"></button></header>
      <p class="where"></p><p class="links"><a class="report" target="_blank" rel="noopener"></a></p>${figures(d)}
      <p class="dates"></p><h2></h2><ul class="findings"></ul><p class="who"></p>`;
    box.querySelector(".pid").textContent = d.parcel_id;
    box.querySelector(".close").textContent = t("close");
    box.querySelector(".close").addEventListener("click", unselect);
    box.querySelector(".where").textContent = [d.street, d.community, d.use && `${t("landUse")}: ${d.use}`,
      d.status && `${t("landStatus")}: ${d.status}`].filter(Boolean).join(" · ");
    const report = box.querySelector(".report");
    report.href = `/land/parcels/${encodeURIComponent(d.parcel_id)}/report.pdf`;
    report.textContent = t("landReport");
    const dates = d.dates || {};
    box.querySelector(".dates").textContent = `${t("landDates")}: ${[dates.approval_date, dates.start_deadline,
      dates.completion_deadline].map((x) => x || "—").join(" / ")}`;
    box.querySelector("h2").textContent = `${t("landFindings")} (${d.findings.filter(isOpen).length})`;
    const items = d.findings.map(finding);
    if (!items.length) items.push(Object.assign(document.createElement("li"), { textContent: t("landNoFindings") }));
    box.querySelector(".findings").replaceChildren(...items);
    const signIn = `/auth/login?next=${encodeURIComponent(location.pathname)}`;
    box.querySelector(".who").innerHTML = esc(who) + (mayEdit() ? ""
      : ` · ${esc(t("landNeedRole"))} <a href="${esc(signIn)}">${esc(t("landSignIn"))}</a>`);
    box.hidden = !api.isVisible(KEY);
  }

  // a finding's new state: refused without the land supervisor role (401 or 403), said so in its place
  async function changeState(id, state, note, li) {
    const msg = li.querySelector(".msg");
    const say = (text, ok) => { msg.textContent = text; msg.className = `msg ${ok ? "ok" : "error"}`; };
    say(t("landSaving"), true);
    let r;
    try {
      r = await fetch(`/land/findings/${id}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                body: JSON.stringify({ state, note }) });
    } catch (err) { say(`${t("landFailed")}: ${err}`, false); return; }
    if (r.status === 401 || r.status === 403) { say(t("landNeedRole"), false); land.refused = r.status; return; }
    if (!r.ok) {
      const { detail: why } = await r.json().catch(() => ({}));
      say(`${t("landFailed")}: ${typeof why === "string" ? why : JSON.stringify(why ?? r.status)}`, false);
      return;
    }
    land.saved = await r.json();
    await select(detail.parcel_id, { fly: false });
    const again = $("land-detail").querySelector(`li[data-finding="${id}"] .msg`);
    if (again) { again.textContent = t("landSaved"); again.className = "msg ok"; }
  }

  // --- map picking and tooltips --------------------------------------------------------------------
  const baseTooltip = api.deck.props.getTooltip;
  const baseClick = api.deck.props.onClick;
  const row = (k, v) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`;
  function tooltip(info) {
    const id = info.layer && info.layer.id;
    const p = info.object && info.object.properties;
    if (!p || (id !== "land-parcels" && id !== "land-buildings")) return null;
    if (id === "land-buildings") {
      return { className: "cim-tooltip", html: `<div class="tt-title">${esc(p.name || p.id)}</div><table>` +
        row(t("landHeight"), `${num(p.height, 1)} ${t("unit_m")}`) + "</table>" };
    }
    return { className: "cim-tooltip", html: `<div class="tt-title">${esc(p.parcel_id)} ${badge(p.verdict)}</div><table>` +
      row(t("street"), p.street || "—") + row(t("community"), p.community || "—") +
      row(t("landFindings"), p.findings.map(kindTitle).join("、") || "—") + "</table>" };
  }
  api.deck.setProps({
    getTooltip: (info) => tooltip(info) || (baseTooltip ? baseTooltip(info) : null),
    onClick: (info, event) => {
      if (baseClick) baseClick(info, event);
      const id = info.layer && info.layer.id;
      if (!api.isVisible(KEY) || !land.checked || (id && id.startsWith("live-"))) return;  // live points have their own
      // a parcel under a building (whose pick layer is on top) is picked too
      const hit = id === "land-parcels" ? info : api.deck.pickObject({ x: info.x, y: info.y, layerIds: ["land-parcels"] });
      if (hit && hit.object) select(hit.object.properties.parcel_id);
    },
  });

  // --- wiring --------------------------------------------------------------------------------------
  async function open() {
    panel();
    await load();
    refilter();
    panel();
    draw();
    showDetail();
  }
  $("land-toggle").addEventListener("change", (e) => api.setLayerVisible(KEY, e.target.checked));
  for (const name of Object.keys(filters)) {
    $(`land-${name}`).addEventListener("change", (e) => { filters[name] = e.target.value; refilter(); panel(); draw(); });
  }
  api.onVisibility.push((key, visible) => { if (key === KEY) (visible ? open() : panel()); });
  api.onLanguage.push(() => { panel(); showDetail(); });
  api.onMessage.push((m) => { if (m.type === "cim:land.select" && m.parcel_id) select(String(m.parcel_id)); });
  window.cimLand = { select, open, unselect };
  if (api.isVisible(KEY)) open(); else panel();
})();
