/* agkit monitor dashboard: live uPlot charts fed by the /dashboard WebSocket. */
(function () {
  "use strict";
  // The original ag-botkit dashboard's six tiles first, then PnL, inventory, fills and latency.
  // A tile shows every series (name + labels) whose name it lists; other names get a tile each.
  const TILES = [
    { id: "lag", title: "Feed / RTDS lag (ms)", names: ["polymarket.rtds.lag_ms", "feed.lag_ms"], suffixes: [".lag_ms"], stats: "cur" },
    { id: "rate", title: "Messages per second", names: ["polymarket.rtds.msgs_per_second", "monitor.records_per_second"], suffixes: [".msgs_per_second"], stats: "cur" },
    { id: "position", title: "Position size", names: ["polymarket.position.size", "position.size", "strategy.position_size"], stats: "total" },
    { id: "risk", title: "Risk decisions (1 allowed, 0 blocked)", names: ["polymarket.risk.decision", "risk.decision"], stats: "risk", points: true },
    { id: "riskcount", title: "Risk decisions (cumulative, by decision)", names: ["risk.decisions"], stats: "cur" },
    { id: "received", title: "Messages received", names: ["polymarket.rtds.messages_received", "monitor.records_received"], suffixes: [".messages_received"], stats: "received" },
    { id: "kill", title: "Kill switch", names: ["polymarket.risk.kill_switch", "risk.kill_switch"], stats: "kill", step: true },
    { id: "pnl", title: "PnL (USD)", names: ["strategy.pnl_usd", "strategy.realized_pnl_usd", "strategy.unrealized_pnl_usd", "portfolio.pnl_usd", "portfolio.realized_pnl_usd", "portfolio.unrealized_pnl_usd", "risk.pnl_usd", "risk.daily_pnl_usd"], suffixes: ["pnl_usd"], stats: "cur" },
    { id: "inventory", title: "Inventory (USD)", names: ["polymarket.inventory.value_usd", "strategy.position_value_usd", "portfolio.inventory_value_usd", "risk.exposure_usd"], stats: "cur" },
    { id: "fills", title: "Fills", names: ["fills.count", "fills.notional_usd", "exec.orders_filled", "strategy.orders_filled", "exec_fills", "exec.fills"], stats: "cur" },
    { id: "latency", title: "Latency (ms)", names: ["exec.latency_ms", "exec.ack_latency_ms", "strategy.order_latency_ms"], suffixes: ["latency_ms"], stats: "cur" },
  ];
  const COLORS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292", "#a1887f", "#90a4ae"];
  const MAX_POINTS = 20000;
  const HEIGHT = 200;
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  let windowS = 300;
  let paused = false;
  let status = {};
  const defs = new Map(); // series id -> {id, name, labels, kind}
  const data = new Map(); // series id -> {xs: seconds[], ys: values[]}
  const tiles = [];
  const byName = new Map();
  const stats = { frames: 0, points: 0, backfills: 0, renders: 0, connected: false };
  window.agkit = { stats: stats, tiles: tiles, defs: defs, data: data };

  const $ = (id) => document.getElementById(id);
  const fmt = (v) => (v === null || v === undefined || !isFinite(v)) ? "–" :
    Math.abs(v) >= 1e6 ? v.toExponential(3) : (Math.round(v * 1000) / 1000).toString();

  function makeTile(spec) {
    const el = document.createElement("section");
    el.className = "tile";
    el.dataset.tile = spec.id;
    el.innerHTML = '<h2><span class="title"></span><span class="stats"></span></h2>' +
      (spec.stats === "kill" ? '<div class="indicator clear">OFF</div>' : "") +
      '<div class="chart"><div class="empty">waiting for data</div></div>';
    el.querySelector(".title").textContent = spec.title;
    $("tiles").appendChild(el);
    const tile = { spec: spec, el: el, chartEl: el.querySelector(".chart"), statsEl: el.querySelector(".stats"),
      sids: [], u: null, dirty: true, rebuild: true, points: 0 };
    tiles.push(tile);
    return tile;
  }

  for (const spec of TILES) {
    const t = makeTile(spec);
    for (const n of spec.names) byName.set(n, t);
  }

  function tileFor(name) {
    let t = byName.get(name);
    if (!t) { // by suffix: e.g. feed.sim.msgs_per_second joins the message-rate tile
      const spec = TILES.find((sp) => (sp.suffixes || []).some((x) => name.endsWith(x)));
      if (spec) { t = tiles.find((tl) => tl.spec === spec); byName.set(name, t); }
    }
    if (!t) {
      t = makeTile({ id: "m-" + name, title: name, names: [name], stats: "cur" });
      byName.set(name, t);
    }
    return t;
  }

  function short(v) { // token ids are 77 digits: keep the ends
    v = String(v);
    return v.length > 16 ? v.slice(0, 6) + "…" + v.slice(-6) : v;
  }

  function label(def) {
    const keys = Object.keys(def.labels || {}).sort();
    if (!keys.length) return def.name;
    return def.name + "{" + keys.map((k) => k + "=" + short(def.labels[k])).join(",") + "}";
  }

  function addDef(def) {
    if (!defs.has(def.id)) defs.set(def.id, def);
    if (!data.has(def.id)) data.set(def.id, { xs: [], ys: [] });
    const t = tileFor(def.name);
    if (!t.sids.includes(def.id)) { t.sids.push(def.id); t.rebuild = true; t.dirty = true; }
  }

  function addPoints(sid, ts, vs) {
    const d = data.get(sid);
    const def = defs.get(sid);
    if (!d || !def) return;
    let last = d.xs.length ? d.xs[d.xs.length - 1] : -Infinity;
    for (let i = 0; i < ts.length; i++) {
      const x = ts[i] / 1e6;
      if (x < last) continue; // older than what we have (backfill and a frame can overlap)
      if (x === last) { d.ys[d.ys.length - 1] = vs[i]; continue; } // same instant: the newest value wins
      d.xs.push(x); d.ys.push(vs[i]); last = x;
      stats.points++;
    }
    if (d.xs.length > MAX_POINTS) { d.xs.splice(0, d.xs.length - MAX_POINTS); d.ys.splice(0, d.ys.length - MAX_POINTS); }
    tileFor(def.name).dirty = true;
  }

  function onMessage(ev) {
    const msg = JSON.parse(ev.data);
    stats.frames++;
    if (msg.t === "backfill") {
      stats.backfills++;
      for (const d of data.values()) { d.xs.length = 0; d.ys.length = 0; }
    }
    for (const def of msg.defs || []) addDef(def);
    for (const [sid, ts, vs] of msg.p || []) addPoints(sid, ts, vs);
    if (msg.status) { status = msg.status; showStatus(); }
  }

  function showStatus() {
    $("s-records").textContent = status.records;
    $("s-rate").textContent = Math.round(status.rate);
    $("s-series").textContent = status.series;
    $("s-pnl").textContent = fmt(status.pnl);
    $("s-rejected").textContent = status.rejected;
    const kill = killEngaged();
    const k = $("kill");
    k.className = "badge " + (kill ? "engaged" : "ok");
    k.textContent = "kill switch " + (kill ? "ENGAGED" + (status.kill_reason ? ": " + status.kill_reason : "") : "OFF");
  }

  function killEngaged() {
    if (status.kill) return true;
    const t = byName.get("risk.kill_switch");
    if (!t) return false;
    for (const sid of t.sids) {
      const d = data.get(sid);
      if (d && d.ys.length && d.ys[d.ys.length - 1] >= 1) return true;
    }
    return false;
  }

  function lowerBound(xs, x) {
    let lo = 0, hi = xs.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function tileData(t) {
    let maxX = -Infinity;
    for (const sid of t.sids) { const d = data.get(sid); if (d.xs.length) maxX = Math.max(maxX, d.xs[d.xs.length - 1]); }
    if (maxX === -Infinity) return null;
    const minX = maxX - windowS;
    const tables = t.sids.map((sid) => {
      const d = data.get(sid);
      const i = lowerBound(d.xs, minX);
      return [d.xs.slice(i), d.ys.slice(i)];
    });
    t.points = tables.reduce((n, tb) => n + tb[0].length, 0);
    const aligned = tables.length === 1 ? tables[0] : uPlot.join(tables);
    if (aligned[0].length === 1) { // one instant would stretch the time axis over years: show a minute
      const x = aligned[0][0];
      return [[x - 60, x]].concat(aligned.slice(1).map((ys) => [null, ys[0]]));
    }
    return aligned;
  }

  function chartOpts(t) {
    const spec = t.spec;
    return {
      width: Math.max(200, t.chartEl.clientWidth),
      height: HEIGHT,
      scales: { x: { time: true } },
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      axes: [
        { stroke: "#9aa5b1", grid: { stroke: "#2a313b" }, ticks: { stroke: "#2a313b" } },
        { stroke: "#9aa5b1", grid: { stroke: "#2a313b" }, ticks: { stroke: "#2a313b" }, size: 60 },
      ],
      series: [{}].concat(t.sids.map((sid, i) => ({
        label: label(defs.get(sid)),
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: true,
        points: spec.points ? { show: true, size: 5 } : {}, // uPlot's default: markers when sparse
        paths: spec.points ? () => null : (spec.step ? uPlot.paths.stepped({ align: 1 }) : undefined),
      }))),
    };
  }

  function tileStats(t, aligned) {
    const spec = t.spec;
    const first = aligned ? aligned[1] : null;
    const vals = first ? first.filter((v) => v !== null && v !== undefined) : [];
    const cur = vals.length ? vals[vals.length - 1] : null;
    if (spec.stats === "risk") {
      const allowed = vals.filter((v) => v >= 1).length;
      return "allowed " + allowed + " · blocked " + (vals.length - allowed);
    }
    if (spec.stats === "received") {
      const span = aligned && aligned[0].length > 1 ? aligned[0][aligned[0].length - 1] - aligned[0][0] : 0;
      const rate = span > 0 && vals.length > 1 ? (vals[vals.length - 1] - vals[0]) / span : 0;
      return "total " + fmt(cur) + " · " + fmt(rate) + "/s";
    }
    if (spec.stats === "total") {
      let total = 0;
      for (const sid of t.sids) { const d = data.get(sid); if (d.ys.length) total += d.ys[d.ys.length - 1]; }
      return "total " + fmt(total);
    }
    if (spec.stats === "kill") return "";
    if (!vals.length) return "";
    let sum = 0, max = -Infinity;
    for (const v of vals) { sum += v; if (v > max) max = v; }
    return "cur " + fmt(cur) + " · avg " + fmt(sum / vals.length) + " · max " + fmt(max);
  }

  function render() {
    requestAnimationFrame(render);
    if (paused) return;
    for (const t of tiles) {
      if (t.spec.stats === "kill") {
        const on = killEngaged();
        const ind = t.el.querySelector(".indicator");
        ind.textContent = on ? "ENGAGED" : "OFF";
        ind.className = "indicator " + (on ? "engaged" : "clear");
        t.el.classList.toggle("alarm", on);
      }
      if (!t.dirty) continue;
      t.dirty = false;
      const aligned = tileData(t);
      if (!aligned) continue;
      if (t.rebuild || !t.u) {
        if (t.u) t.u.destroy();
        t.chartEl.textContent = "";
        t.u = new uPlot(chartOpts(t), aligned, t.chartEl);
        t.rebuild = false;
      } else {
        t.u.setData(aligned);
      }
      t.statsEl.textContent = tileStats(t, aligned);
      stats.renders++;
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const url = proto + "://" + location.host + "/dashboard" + (token ? "?token=" + encodeURIComponent(token) : "");
    const ws = new WebSocket(url);
    ws.onopen = () => { stats.connected = true; $("conn").className = "badge ok"; $("conn").textContent = "live"; };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      stats.connected = false;
      $("conn").className = "badge off"; $("conn").textContent = "reconnecting";
      setTimeout(connect, 2000);
    };
  }

  $("window").onchange = (e) => { windowS = Number(e.target.value); for (const t of tiles) t.dirty = true; };
  $("pause").onclick = (e) => { paused = !paused; e.target.textContent = paused ? "resume" : "pause"; for (const t of tiles) t.dirty = true; };
  window.addEventListener("resize", () => {
    for (const t of tiles) if (t.u) t.u.setSize({ width: Math.max(200, t.chartEl.clientWidth), height: HEIGHT });
  });
  connect();
  requestAnimationFrame(render);
})();
