// estrom live view, counts: a histogram of matches per second (the last
// minutes) and the top values of a column, from the tailor's
// GET /api/v0.1/counts as server-sent events. Plain DOM, no charting library.
// Its own EventSources: pausing the hits table does not pause the counts.
(function () {
  "use strict";

  const HISTORY_SECONDS = 300;   // bars in the histogram, one per second
  const TOP_SECONDS = 60;        // the top-values bar sums this many windows
  const TOP_K = 8;

  const $ = (id) => document.getElementById(id);
  const el = { box: $("counts"), histogram: $("histogram"), peak: $("histogram-peak"),
               field: $("top-field"), top: $("topbar") };

  const state = { rate: null, top: null, bins: [], byFrames: [], field: null, sid: null, base: null,
                  onPick: null };

  function source(params) {
    const query = new URLSearchParams(Object.assign({ s: state.sid, format: "sse" }, params));
    return new EventSource(state.base + "/api/v0.1/counts?" + query.toString());
  }

  function close(es) { if (es) es.close(); }

  function open(sid, base) {
    close(state.rate); close(state.top);
    state.rate = state.top = null;
    state.sid = sid;
    state.base = (base || "").replace(/\/+$/, "");
    state.bins = [];
    state.byFrames = [];
    el.box.hidden = !sid;
    drawHistogram();
    drawTop();
    if (!sid) return;
    state.rate = source({ every: "1", since: HISTORY_SECONDS + "s" });
    state.rate.addEventListener("count", (e) => {
      const frame = JSON.parse(e.data);
      state.bins.push({ t: frame.t, total: frame.total });
      if (state.bins.length > HISTORY_SECONDS) state.bins.splice(0, state.bins.length - HISTORY_SECONDS);
      drawHistogram();
    });
    state.rate.addEventListener("end", () => close(state.rate));
    if (state.field) countBy(state.field);
  }

  function countBy(field) {
    state.field = field;
    close(state.top);
    state.byFrames = [];
    el.field.textContent = field;
    drawTop();
    if (!state.sid) return;
    state.top = source({ every: "1", by: field, k: String(TOP_K), since: TOP_SECONDS + "s" });
    state.top.addEventListener("count", (e) => {
      state.byFrames.push(JSON.parse(e.data).by);
      if (state.byFrames.length > TOP_SECONDS) state.byFrames.shift();
      drawTop();
    });
    state.top.addEventListener("end", () => close(state.top));
  }

  function drawHistogram() {
    const peak = Math.max(1, ...state.bins.map((b) => b.total));
    const bars = state.bins.map((b) => {
      const bar = document.createElement("span");
      bar.className = "hbar";
      bar.style.height = Math.round((100 * b.total) / peak) + "%";
      bar.title = b.t + ": " + b.total;
      bar.dataset.total = String(b.total);
      return bar;
    });
    el.histogram.replaceChildren(...bars);
    el.peak.textContent = String(peak);
  }

  function drawTop() {
    const sums = {};
    for (const by of state.byFrames) for (const [v, n] of Object.entries(by)) sums[v] = (sums[v] || 0) + n;
    const ranked = Object.entries(sums).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const all = ranked.reduce((s, [, n]) => s + n, 0);
    const parts = ranked.map(([value, n]) => {
      const seg = document.createElement("button");
      seg.type = "button";
      seg.className = "seg" + (value.startsWith("_") ? " rest" : "");
      seg.style.flexGrow = String(n);
      seg.dataset.value = value;
      seg.dataset.count = String(n);
      seg.textContent = value + " " + n;
      seg.title = value + ": " + n + " in the last " + TOP_SECONDS + " s" + (value === "_other" ? "" : " (click to narrow the query)");
      if (value !== "_other") seg.addEventListener("click", () => state.onPick && state.onPick(state.field, value));
      return seg;
    });
    el.top.replaceChildren(...parts);
    el.top.dataset.total = String(all);
    el.top.dataset.frames = String(state.byFrames.length); // > 0: the count stream is live
  }

  window.estromCounts = {
    open: open,
    countBy: countBy,
    onPick: (fn) => { state.onPick = fn; },
    state: state,
  };
})();
