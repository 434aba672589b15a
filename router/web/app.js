// estrom live view: register a query over WAMP, subscribe to docs-for-<sid>,
// show hits newest on top. Plain JS, no build step; autobahn-js is served by
// the router from router/node_modules (see router/package.json).
(function () {
  "use strict";

  const REALM = "estrom";
  const RATE_WINDOW_MS = 5000;
  const BUFFER_CAP = 50000; // hits kept while paused; the count of what waits stays exact
  const PREFERRED_FIELDS = ["level", "severity", "service", "host", "status", "message", "msg"];
  const ERRORS = {
    "com.estrom.error.invalid_query": "Invalid query",
    "com.estrom.error.invalid_index": "Invalid index",
    "com.estrom.error.unavailable": "Engine unavailable (try again shortly)",
    "com.estrom.error.no_such_query": "Unknown subscription",
    "wamp.error.no_such_procedure": "No beater is connected to the router",
    "wamp.error.not_authorized": "Not allowed",
    "wamp.error.canceled": "Call canceled",
  };

  const RETRIED = ["wamp.error.no_such_procedure", "com.estrom.error.unavailable"];

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("query-form"), index: $("index"), query: $("query"), recent: $("recent-indices"),
    conn: $("conn"), connText: $("conn-text"),
    error: $("error"), errorTitle: $("error-title"), errorText: $("error-text"), errorClose: $("error-close"),
    errorMore: $("error-more"), errorFull: $("error-full"),
    sid: $("sid"), curl: $("curl"), copy: $("copy-curl"),
    rate: $("rate"), total: $("total"), waiting: $("waiting"), waitingBox: $("waiting-box"),
    pause: $("pause"), clear: $("clear"), fields: $("fields"), maxRows: $("max-rows"), tailorUrl: $("tailor-url"),
    head: $("hits-head"), rows: $("rows"), empty: $("empty"),
  };

  const state = {
    session: null,
    subscription: null,
    current: null,      // {index, query (string|object), text}
    sid: null,
    paused: false,
    buffer: [],
    waiting: 0,
    pending: [],        // hits to draw on the next animation frame
    total: 0,
    arrivals: [],       // arrival times in the rate window
    columns: [],
    autoColumns: true,
    terms: [],
    generation: 0,      // bumps with every new query, so late answers of old ones are dropped
    drawScheduled: false,
  };

  // ---- settings kept in the browser --------------------------------------------------------

  const store = {
    get(key, fallback) { try { return localStorage.getItem("estrom." + key) ?? fallback; } catch (e) { return fallback; } },
    set(key, value) { try { localStorage.setItem("estrom." + key, value); } catch (e) { /* private mode */ } },
  };
  el.tailorUrl.value = store.get("tailor", location.protocol + "//" + (location.hostname || "127.0.0.1") + ":8082");
  el.maxRows.value = store.get("maxRows", "500");
  el.fields.value = store.get("fields", "");

  function recentIndices() {
    try { return JSON.parse(store.get("indices", "[]")); } catch (e) { return []; }
  }
  function rememberIndex(index) {
    const list = [index].concat(recentIndices().filter((i) => i !== index)).slice(0, 12);
    store.set("indices", JSON.stringify(list));
    renderRecent();
  }
  function renderRecent() {
    el.recent.replaceChildren(...recentIndices().map((i) => { const o = document.createElement("option"); o.value = i; return o; }));
  }
  renderRecent();

  // ---- the URL carries the view: #i=<index>&q=<query>[&f=<fields>] -------------------------

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { index: params.get("i") || "", query: params.get("q") || "", fields: params.get("f") };
  }
  function writeHash(index, text) {
    const params = new URLSearchParams();
    params.set("i", index);
    params.set("q", text);
    if (el.fields.value.trim()) params.set("f", el.fields.value.trim());
    const hash = "#" + params.toString();
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  // ---- connection ----------------------------------------------------------------------------

  function setConn(kind, text) {
    el.conn.dataset.state = kind;
    el.connText.textContent = text;
  }

  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + (location.host || "127.0.0.1:8080") + "/ws";
  const connection = new autobahn.Connection({
    url: wsUrl,
    realm: REALM,
    max_retries: -1,
    initial_retry_delay: 0.5,
    max_retry_delay: 5,
    retry_delay_growth: 1.5,
    retry_delay_jitter: 0.1,
  });

  connection.onopen = function (session) {
    state.session = session;
    state.subscription = null;
    setConn("open", "connected");
    if (state.current) follow(state.current, { resubscribe: true });
  };

  connection.onclose = function (reason, details) {
    state.session = null;
    state.subscription = null;
    setLive(false);
    if (details && details.will_retry) {
      const secs = details.retry_delay ? " in " + details.retry_delay.toFixed(1) + " s" : "";
      setConn("retry", "reconnecting" + secs + "…");
    } else {
      setConn("closed", reason === "closed" ? "closed" : "disconnected (" + reason + ")");
    }
    return false; // keep autobahn's automatic reconnect
  };

  // ---- queries -------------------------------------------------------------------------------

  function parseQuery(text) {
    const t = text.trim();
    if (t.startsWith("{")) {
      try { return JSON.parse(t); } catch (e) { throw { title: "Query is not valid JSON", text: e.message }; }
    }
    return t;
  }

  function follow(target, opts) {
    const resubscribe = opts && opts.resubscribe;
    const generation = ++state.generation;
    const session = state.session;
    setLive(false);
    if (!resubscribe) {
      clearRows();
      resetStats();
      setSid(null);
    }
    state.current = target;
    state.terms = highlightTerms(target.query);
    if (!session) { showError("Not connected", "the query is sent as soon as the router answers"); return; }
    hideError();
    const old = state.subscription;
    state.subscription = null;
    if (old && old.active) session.unsubscribe(old).catch(() => {});
    session.call("com.estrom.register_query", [target.index, target.query]).then(
      (sid) => {
        if (generation !== state.generation || session !== state.session) return;
        return session.subscribe("docs-for-" + sid, onEvent).then((sub) => {
          if (generation !== state.generation || session !== state.session) { session.unsubscribe(sub).catch(() => {}); return; }
          state.subscription = sub;
          setSid(sid);
          setLive(true);
        });
      }
    ).catch((err) => {
      if (generation !== state.generation) return;
      showWampError(err);
      // No beater yet (e.g. it is still rejoining a restarted router) or the engine is down:
      // the query is valid as far as we know, so keep trying on this session.
      if (err && RETRIED.includes(err.error) && session === state.session) {
        setTimeout(() => {
          if (generation === state.generation && session === state.session) follow(target, { resubscribe: true });
        }, 2000);
      }
    });
  }

  function onEvent(args) {
    const now = Date.now();
    for (const hit of args || []) {
      if (!hit || typeof hit !== "object") continue;
      const item = { hit: hit, arrived: now };
      state.total += 1;
      state.arrivals.push(now);
      if (state.paused) {
        state.waiting += 1;
        state.buffer.push(item);
        if (state.buffer.length > BUFFER_CAP) state.buffer.shift();
      } else {
        state.pending.push(item);
      }
    }
    scheduleDraw();
  }

  // ---- rendering -----------------------------------------------------------------------------

  function maxRows() { return parseInt(el.maxRows.value, 10) || 500; }

  function scheduleDraw() {
    if (state.drawScheduled) return;
    state.drawScheduled = true;
    requestAnimationFrame(draw);
  }

  function draw() {
    state.drawScheduled = false;
    el.total.textContent = state.total.toLocaleString();
    el.waiting.textContent = state.waiting.toLocaleString();
    el.waitingBox.hidden = !state.paused && state.waiting === 0;
    if (!state.pending.length) return;
    const cap = maxRows();
    const items = state.pending.length > cap ? state.pending.slice(-cap) : state.pending;
    state.pending = [];
    if (state.autoColumns && !state.columns.length) chooseColumns(items[0].hit._source || {});
    const frag = document.createDocumentFragment();
    for (let i = items.length - 1; i >= 0; i--) frag.appendChild(renderRow(items[i]));
    el.rows.insertBefore(frag, el.rows.firstChild);
    trimRows(cap);
    el.empty.hidden = true;
  }

  function trimRows(cap) {
    let rows = el.rows.querySelectorAll("tr.hit");
    for (let i = rows.length - 1; i >= cap; i--) {
      const row = rows[i];
      if (row.nextSibling && row.nextSibling.classList.contains("detail")) row.nextSibling.remove();
      row.remove();
    }
  }

  function chooseColumns(source) {
    const typed = el.fields.value.split(",").map((f) => f.trim()).filter(Boolean);
    if (typed.length) {
      state.columns = typed;
      state.autoColumns = false;
    } else {
      const keys = Object.keys(source).filter((k) => k !== "@timestamp" && isScalar(source[k]));
      const preferred = PREFERRED_FIELDS.filter((k) => keys.includes(k));
      const rest = keys.filter((k) => !preferred.includes(k));
      state.columns = preferred.concat(rest).slice(0, 4);
    }
    renderHead();
  }

  function renderHead() {
    const cols = state.columns.map((c) => {
      const cell = th(c, "col");
      cell.title = "count by " + c;
      cell.addEventListener("click", () => window.estromCounts.countBy(c));
      return cell;
    });
    el.head.replaceChildren(th("time", "time"), ...cols, th("document", "doc"));
  }

  // A value picked in the top-values bar narrows the query to it.
  window.estromCounts.onPick((field, value) => {
    const text = el.query.value.trim();
    const term = value === "_missing" ? "NOT _exists_:" + field : field + ':"' + value.replace(/(["\\])/g, "\\$1") + '"';
    el.query.value = text.startsWith("{") ? text : "(" + text + ") AND " + term;
    el.form.requestSubmit();
  });

  function th(text, cls) { const c = document.createElement("th"); c.textContent = text; c.className = cls; return c; }

  function isScalar(v) { return v === null || ["string", "number", "boolean"].includes(typeof v); }

  function lookup(source, path) {
    if (path in source) return source[path];
    let v = source;
    for (const part of path.split(".")) {
      if (v === null || typeof v !== "object" || !(part in v)) return undefined;
      v = v[part];
    }
    return v;
  }

  function renderRow(item) {
    const hit = item.hit;
    const source = hit._source || {};
    const tr = document.createElement("tr");
    tr.className = "hit";
    const ts = source["@timestamp"];
    const time = document.createElement("td");
    time.className = "time";
    const when = ts !== undefined ? new Date(ts) : new Date(item.arrived);
    const valid = !isNaN(when.getTime());
    time.textContent = valid ? clock(when) : String(ts);
    time.title = (ts !== undefined ? "@timestamp " + ts : "arrived " + new Date(item.arrived).toISOString());
    if (ts === undefined) time.classList.add("arrival");
    tr.appendChild(time);
    for (const col of state.columns) {
      const td = document.createElement("td");
      td.className = "col";
      const v = lookup(source, col);
      const text = v === undefined ? "" : isScalar(v) ? String(v) : JSON.stringify(v);
      td.dataset.field = col;
      if (col === "level" || col === "severity") td.dataset.level = String(v).toLowerCase();
      highlightInto(td, text);
      tr.appendChild(td);
    }
    const doc = document.createElement("td");
    doc.className = "doc";
    highlightInto(doc, JSON.stringify(source));
    tr.appendChild(doc);
    tr.addEventListener("click", () => toggleDetail(tr, hit));
    return tr;
  }

  function toggleDetail(tr, hit) {
    const next = tr.nextSibling;
    if (next && next.classList.contains("detail")) { next.remove(); tr.classList.remove("open"); return; }
    const detail = document.createElement("tr");
    detail.className = "detail";
    const td = document.createElement("td");
    td.colSpan = state.columns.length + 2;
    const pre = document.createElement("pre");
    const meta = { _index: hit._index };
    if (hit._id !== undefined) meta._id = hit._id;
    highlightInto(pre, JSON.stringify(meta) + "\n" + JSON.stringify(hit._source, null, 2));
    td.appendChild(pre);
    detail.appendChild(td);
    tr.after(detail);
    tr.classList.add("open");
  }

  function clock(d) {
    const p = (n, w) => String(n).padStart(w || 2, "0");
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
  }

  // ---- highlighting the terms of simple queries ---------------------------------------------

  function highlightTerms(query) {
    const terms = [];
    if (typeof query === "string") {
      const re = /"([^"]+)"|(\S+)/g;
      let m;
      while ((m = re.exec(query))) {
        let t = m[1] !== undefined ? m[1] : m[2];
        if (m[1] === undefined) {
          if (/^(AND|OR|NOT|TO|&&|\|\|)$/.test(t)) continue;
          t = t.replace(/^[+\-!(]+|[)]+$/g, "");
          const colon = t.search(/(?<!\\):/);
          if (colon >= 0) t = t.slice(colon + 1);
          t = t.replace(/^"|"$/g, "").replace(/\^[\d.]+$|~\d*$/g, "");
          if (/[\[\]{}*?\/]/.test(t) || t === "_exists_") continue;
        }
        if (t.length >= 2) terms.push(t);
      }
    } else if (query && typeof query === "object") {
      const walk = (node, key) => {
        if (typeof node === "string" && ["match", "match_phrase", "term", "terms", "query", "value", "prefix"].includes(key)) terms.push(node);
        else if (Array.isArray(node)) node.forEach((n) => walk(n, key));
        else if (node && typeof node === "object") {
          for (const [k, v] of Object.entries(node)) walk(v, ["match", "match_phrase", "term", "terms"].includes(key) && typeof v === "string" ? key : k);
        }
      };
      walk(query, "");
    }
    return [...new Set(terms.filter((t) => t.length >= 2))].slice(0, 20);
  }

  function highlightInto(node, text) {
    if (!state.terms.length || !text) { node.textContent = text; return; }
    const escaped = state.terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const re = new RegExp("(" + escaped.join("|") + ")", "gi");
    let last = 0;
    let m;
    const frag = document.createDocumentFragment();
    while ((m = re.exec(text))) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      frag.appendChild(mark);
      last = m.index + m[0].length;
    }
    if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
    node.replaceChildren(frag);
  }

  // ---- stats, sid, errors --------------------------------------------------------------------

  function resetStats() {
    state.total = 0;
    state.waiting = 0;
    state.buffer = [];
    state.pending = [];
    state.arrivals = [];
    scheduleDraw();
  }

  setInterval(() => {
    const now = Date.now();
    while (state.arrivals.length && state.arrivals[0] < now - RATE_WINDOW_MS) state.arrivals.shift();
    el.rate.textContent = (state.arrivals.length / (RATE_WINDOW_MS / 1000)).toFixed(1);
  }, 500);

  function curlLine(sid) {
    const base = (el.tailorUrl.value.trim() || "http://127.0.0.1:8082").replace(/\/+$/, "");
    return "curl -N '" + base + "/api/v0.1/docs?s=" + sid + "'";
  }

  // Whether hits of the current sid reach this page right now (false while resubscribing).
  function setLive(live) {
    el.sid.dataset.live = live ? "1" : "0";
    el.sid.title = live ? "subscribed: hits arrive live" : "not subscribed right now (reconnecting…)";
  }

  function setSid(sid) {
    if (sid !== state.sid || !sid) window.estromCounts.open(sid, el.tailorUrl.value.trim());
    state.sid = sid;
    el.sid.textContent = sid || "—";
    el.curl.value = sid ? curlLine(sid) : "";
    el.copy.disabled = !sid;
  }

  function showError(title, text, full) {
    el.errorTitle.textContent = title;
    el.errorText.textContent = text || "";
    el.errorFull.textContent = full || "";
    el.errorMore.hidden = !full || full === text;
    el.errorMore.open = false;
    el.error.hidden = false;
  }

  // The engine's reasons are long Java exception chains: say the gist, keep the rest one click away.
  function gist(reason) {
    const parse = /Cannot parse '([^]*?)': ([^]*?)(?:\. Was expecting|;|$)/.exec(reason);
    if (parse) return "cannot parse '" + parse[1] + "': " + parse[2].trim();
    const text = reason.replace(/^\[[^\]]*\]\s*/, "");
    return text.length > 240 ? text.slice(0, 240) + "…" : text;
  }
  function hideError() { el.error.hidden = true; }

  function showWampError(err) {
    if (err && err.title) { showError(err.title, err.text); return; }
    const uri = (err && err.error) || "error";
    const reason = err && err.args && err.args.length ? String(err.args[0]) : (err && err.message) || "";
    showError((ERRORS[uri] || uri) + ":", gist(reason) + (ERRORS[uri] ? "  (" + uri + ")" : ""), reason);
  }

  // ---- user actions --------------------------------------------------------------------------

  el.form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const index = el.index.value.trim();
    const text = el.query.value.trim();
    if (!index || !text) return;
    let query;
    try { query = parseQuery(text); } catch (e) { showWampError(e); return; }
    writeHash(index, text);
    rememberIndex(index);
    state.columns = [];
    state.autoColumns = true;
    renderHead();
    follow({ index: index, query: query, text: text });
  });

  el.pause.addEventListener("click", () => {
    state.paused = !state.paused;
    el.pause.textContent = state.paused ? "▶ Resume" : "❚❚ Pause";
    el.pause.classList.toggle("active", state.paused);
    if (!state.paused) {
      state.pending = state.pending.concat(state.buffer);
      state.buffer = [];
      state.waiting = 0;
    }
    scheduleDraw();
  });

  el.clear.addEventListener("click", () => {
    clearRows();
    state.total = 0;
    state.waiting = 0;
    state.buffer = [];
    state.arrivals = [];
    scheduleDraw();
  });

  function clearRows() {
    state.pending = [];
    el.rows.replaceChildren();
    el.empty.hidden = false;
  }

  el.copy.addEventListener("click", () => {
    const text = el.curl.value;
    const done = () => { el.copy.textContent = "Copied ✓"; setTimeout(() => { el.copy.textContent = "Copy curl"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => { el.curl.select(); document.execCommand("copy"); done(); });
    } else {
      el.curl.select();
      document.execCommand("copy");
      done();
    }
  });

  el.errorClose.addEventListener("click", hideError);
  el.maxRows.addEventListener("change", () => { store.set("maxRows", el.maxRows.value); trimRows(maxRows()); });
  el.tailorUrl.addEventListener("change", () => {
    store.set("tailor", el.tailorUrl.value.trim());
    if (state.sid) { window.estromCounts.open(state.sid, el.tailorUrl.value.trim()); setSid(state.sid); }
  });
  el.fields.addEventListener("change", () => {
    store.set("fields", el.fields.value.trim());
    state.columns = [];
    state.autoColumns = true;
    if (state.current) writeHash(state.current.index, state.current.text);
  });

  function restoreFromHash() {
    const h = readHash();
    if (h.fields !== null) el.fields.value = h.fields;
    if (!h.index || !h.query) return;
    el.index.value = h.index;
    el.query.value = h.query;
    let query;
    try { query = parseQuery(h.query); } catch (e) { showWampError(e); return; }
    if (state.current && state.current.index === h.index && state.current.text === h.query) return;
    state.columns = [];
    state.autoColumns = true;
    renderHead();
    follow({ index: h.index, query: query, text: h.query });
  }
  window.addEventListener("hashchange", restoreFromHash);

  // A view restored from the URL is followed once the router answers (onopen).
  (function () {
    const h = readHash();
    if (h.fields !== null) el.fields.value = h.fields;
    if (h.index) el.index.value = h.index;
    if (h.query) el.query.value = h.query;
    if (h.index && h.query) {
      try { state.current = { index: h.index, query: parseQuery(h.query), text: h.query }; } catch (e) { showWampError(e); }
    }
    if (!h.index) el.index.value = recentIndices()[0] || "";
    (el.index.value ? el.query : el.index).focus();
  })();

  // For tests and the curious: the live state, read-only by convention.
  window.estrom = { state: state, connection: connection };
  connection.open();
})();
