// estrom live view: register a query over WAMP, subscribe to docs-for-<sid>,
// show hits newest on top. Plain JS, no build step; autobahn-js is served by
// the router from router/node_modules (see router/package.json).
//
// Shaping: a delay holds hits here, on the WAMP stream, and shows them in
// @timestamp order (a hit older than one already shown is marked late); a max
// rate switches to the tailor's SSE tail (max_rate=, delay=, fields=), which
// samples above it and says so each second (event: sampled).
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
    "com.estrom.error.not_authorized": "Not allowed for this reader",
    "com.estrom.error.quota_exceeded": "Quota exceeded",
  };

  const RETRIED = ["wamp.error.no_such_procedure", "com.estrom.error.unavailable"];
  const SAMPLING_STALE_MS = 3000; // "k of n/s" dims when no second was sampled for this long

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
    delay: $("delay"), maxRate: $("max-rate"), held: $("held"), heldBox: $("held-box"),
    sampled: $("sampled"), sampledBox: $("sampled-box"),
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
    tail: null,         // the tailor's EventSource while a max rate is set (else hits come over WAMP)
    tailUrl: null,      // what it asked for
    held: [],           // delay: hits waiting for their turn, {hit, arrived, key, due}
    holdTimer: null,
    released: null,     // delay: the order key of the newest hit shown; an older one is late
    sampling: { matched: 0, sent: 0, seconds: 0, at: 0 },
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

  // ---- the URL carries the view: #i=<index>&q=<query>[&f=<fields>][&d=<delay s>][&r=<max rate>] --

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { index: params.get("i") || "", query: params.get("q") || "", fields: params.get("f"),
             delay: params.get("d"), maxRate: params.get("r") };
  }
  function writeHash(index, text) {
    const params = new URLSearchParams();
    params.set("i", index);
    params.set("q", text);
    if (el.fields.value.trim()) params.set("f", el.fields.value.trim());
    if (delaySeconds()) params.set("d", String(delaySeconds()));
    if (maxRate()) params.set("r", String(maxRate()));
    const hash = "#" + params.toString();
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  // A value from a shared URL that the list does not offer becomes one of its options.
  function selectValue(select, value) {
    if (value === null || value === undefined) return;
    if (![...select.options].some((o) => o.value === value)) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = value;
      select.appendChild(o);
    }
    select.value = value;
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
    ...(window.estromLogin ? window.estromLogin.options() : {}), // login.js: a reader's token
  });

  connection.onopen = function (session, details) {
    state.session = session;
    state.subscription = null;
    setConn("open", "connected");
    if (window.estromLogin) window.estromLogin.joined(details);
    if (state.current) follow(state.current, { resubscribe: true });
  };

  connection.onclose = function (reason, details) {
    if (window.estromLogin && window.estromLogin.refused(details)) {
      setConn("closed", "token refused");
      return true; // no automatic reconnect with a token the router refused
    }
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
    closeTail();
    if (!resubscribe) {
      clearRows();
      resetStats();
      resetHold();
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
        if (maxRate()) { openTail(sid); return; }
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

  // Hits over WAMP: shown as they come, or held first when a delay is set.
  function onEvent(args) {
    const now = Date.now();
    const items = [];
    for (const hit of args || []) {
      if (hit && typeof hit === "object") items.push({ hit: hit, arrived: now });
    }
    if (delaySeconds()) hold(items);
    else show(items);
  }

  // Hits for the table: into it on the next frame, or into the buffer while paused.
  function show(items) {
    const now = Date.now();
    for (const item of items) {
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

  // ---- delay: hold, then show in @timestamp order ---------------------------------------------
  //
  // The tailor's rules for delay= (tailor/views/order.py), on the WAMP stream: each
  // hit waits up to the delay after it arrived. When one is due, it is shown with
  // every held hit not newer than it, oldest first (equal ones in arrival order):
  // the table never shows a hit after a newer one it held. A hit older than one
  // already shown cannot be put in its place: it is shown at once, marked late (an
  // equal one goes at once too, in order). Hits without a usable @timestamp keep
  // their arrival order, are shown when their own time is up, and are never late.

  function delaySeconds() { return parseFloat(el.delay.value) || 0; }

  function orderKey(item) {
    const ts = item.hit._source ? item.hit._source["@timestamp"] : undefined;
    const t = typeof ts === "number" ? ts : typeof ts === "string" ? Date.parse(ts) : NaN;
    return isNaN(t) ? null : t;
  }

  function hold(items) {
    const delayMs = delaySeconds() * 1000;
    for (const item of items) {
      item.key = orderKey(item);
      if (item.key !== null && state.released !== null && item.key <= state.released) {
        item.late = item.key < state.released;
        show([item]);
        continue;
      }
      item.due = item.arrived + delayMs;
      state.held.push(item);
    }
    // Bounded, as the tailor's buffer is: past the cap, all that is held goes now, in order.
    if (state.held.length > BUFFER_CAP) for (const item of state.held) item.due = 0;
    releaseDue();
  }

  function releaseDue() {
    clearTimeout(state.holdTimer);
    state.holdTimer = null;
    const now = Date.now();
    let upto = null;
    for (const item of state.held) {
      if (item.key !== null && item.due <= now && (upto === null || item.key > upto)) upto = item.key;
    }
    const inOrder = upto === null ? [] : state.held.filter((i) => i.key !== null && i.key <= upto);
    const out = inOrder.sort((a, b) => a.key - b.key).concat(state.held.filter((i) => i.key === null && i.due <= now));
    if (out.length) {
      const gone = new Set(out);
      state.held = state.held.filter((i) => !gone.has(i));
      if (upto !== null) state.released = state.released === null ? upto : Math.max(state.released, upto);
      show(out);
    }
    if (state.held.length) {
      const next = Math.min(...state.held.map((i) => i.due));
      state.holdTimer = setTimeout(releaseDue, Math.max(0, next - now));
    }
    scheduleDraw();
  }

  function resetHold() {
    clearTimeout(state.holdTimer);
    state.holdTimer = null;
    state.held = [];
    state.released = null;
  }

  // ---- max rate: the tailor's SSE tail, sampled above it ----------------------------------------

  function maxRate() { return parseInt(el.maxRate.value, 10) || 0; }

  function tailorBase() { return (el.tailorUrl.value.trim() || "http://127.0.0.1:8082").replace(/\/+$/, ""); }

  // The columns the page shows, as the tailor's fields=: the time column's @timestamp and the
  // columns typed under Settings. None while the columns are chosen from the first hit (the
  // document column then shows whole documents).
  function shownFields() {
    const typed = el.fields.value.split(",").map((f) => f.trim()).filter(Boolean);
    return typed.length ? [...new Set(["@timestamp"].concat(typed))] : null;
  }

  // A tail of the tailor as this page shows it: the columns, the delay, the max rate. Commas, @
  // and * stay as typed (a readable curl line); a quote is escaped for the shell's '...'.
  function tailPath(sid, sse) {
    const params = [["s", sid]];
    const fields = shownFields();
    if (fields) params.push(["fields", fields.join(",")]);
    if (delaySeconds()) params.push(["delay", delaySeconds() + "s"]);
    if (maxRate()) params.push(["max_rate", String(maxRate())]);
    if (sse) params.push(["format", "sse"]);
    const enc = (v) => encodeURIComponent(v).replace(/%2C/g, ",").replace(/%40/g, "@").replace(/'/g, "%27");
    return "/api/v0.1/docs?" + params.map(([k, v]) => k + "=" + enc(v)).join("&");
  }

  function openTail(sid) {
    const url = tailorBase() + tailPath(sid, true);
    const es = new EventSource(url);
    state.tail = es;
    state.tailUrl = url;
    scheduleDraw(); // the page holds nothing now: the tailor does
    const mine = (fn) => (e) => { if (state.tail === es) fn(e); };
    // The tailor has joined the sid's subscription before it answers: from here on, hits arrive.
    es.addEventListener("subscription", mine(() => { setSid(sid); setLive(true); hideError(); }));
    es.addEventListener("hit", mine((e) => {
      const hit = JSON.parse(e.data);
      show([{ hit: hit, arrived: Date.now(), late: hit._late === true }]);
    }));
    es.addEventListener("sampled", mine((e) => onSampled(JSON.parse(e.data))));
    es.addEventListener("gap", mine((e) => {
      const gap = JSON.parse(e.data);
      showError("Hits may be missing here:", (gap.reason || "the tailor lost the router") +
        (gap.missed ? " (" + gap.missed + " missed)" : ""));
    }));
    es.addEventListener("end", mine((e) => {
      const end = JSON.parse(e.data);
      closeTail();
      setLive(false);
      if (end.error) showError("The tailor ended the tail:", end.error + (end.reason ? ": " + end.reason : ""));
    }));
    es.onerror = mine(() => {
      setLive(false); // EventSource reconnects on its own (Last-Event-ID) unless it was refused
      if (es.readyState === EventSource.CLOSED) explainRefusal(url);
    });
  }

  // EventSource does not say why it was refused: ask once more to read the tailor's reason.
  function explainRefusal(url) {
    const abort = new AbortController();
    fetch(url, { signal: abort.signal }).then((resp) => {
      if (resp.ok) { abort.abort(); return; }
      return resp.json().then(
        (body) => showError("The tailor refused the tail:", resp.status + " " + body.error + (body.reason ? ": " + body.reason : "")),
        () => showError("The tailor refused the tail:", String(resp.status)),
      );
    }).catch(() => {
      if (!abort.signal.aborted) showError("Cannot reach the tailor", "at " + tailorBase() + " (the tailor URL is under Settings)");
    });
  }

  function closeTail() {
    if (state.tail) state.tail.close();
    state.tail = null;
    scheduleDraw();
  }

  function onSampled(frame) {
    const s = state.sampling;
    s.matched += frame.matched;
    s.sent += frame.sent;
    s.seconds += 1;
    s.at = Date.now();
    el.sampled.textContent = frame.sent.toLocaleString() + " of " + frame.matched.toLocaleString();
    el.sampledBox.title = "second " + frame.t + ": " + frame.sent + " of " + frame.matched + " matches shown (max rate " + maxRate() + "/s)";
    el.sampledBox.dataset.matched = String(s.matched);
    el.sampledBox.dataset.sent = String(s.sent);
    el.sampledBox.dataset.seconds = String(s.seconds);
    el.sampledBox.classList.remove("stale");
    el.sampledBox.hidden = false;
  }

  function resetSampling() {
    state.sampling = { matched: 0, sent: 0, seconds: 0, at: 0 };
    el.sampledBox.hidden = true;
    for (const key of ["matched", "sent", "seconds"]) el.sampledBox.dataset[key] = "0";
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
    el.held.textContent = state.held.length.toLocaleString();
    el.heldBox.hidden = !delaySeconds() || !!state.tail;
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
    if (item.late) {
      tr.classList.add("late");
      const badge = document.createElement("span");
      badge.className = "late-badge";
      badge.textContent = "late";
      badge.title = "older than a hit already shown: out of @timestamp order";
      time.appendChild(badge);
    }
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
    tr.addEventListener("click", () => toggleDetail(tr, item));
    return tr;
  }

  function toggleDetail(tr, item) {
    const hit = item.hit;
    const next = tr.nextSibling;
    if (next && next.classList.contains("detail")) { next.remove(); tr.classList.remove("open"); return; }
    const detail = document.createElement("tr");
    detail.className = "detail";
    const td = document.createElement("td");
    td.colSpan = state.columns.length + 2;
    const pre = document.createElement("pre");
    const meta = { _index: hit._index };
    if (hit._id !== undefined) meta._id = hit._id;
    if (item.late) meta._late = true;
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
    resetSampling();
    scheduleDraw();
  }

  setInterval(() => {
    const now = Date.now();
    while (state.arrivals.length && state.arrivals[0] < now - RATE_WINDOW_MS) state.arrivals.shift();
    el.rate.textContent = (state.arrivals.length / (RATE_WINDOW_MS / 1000)).toFixed(1);
    if (now - state.sampling.at > SAMPLING_STALE_MS) el.sampledBox.classList.add("stale");
  }, 500);

  function curlLine(sid) {
    return "curl -N '" + tailorBase() + tailPath(sid, false) + "'";
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
    shapingChanged({ tailorAsked: maxRate() > 0 });
  });

  // A shaping control changed: the URL, the curl line, and the stream where it asks the tailor.
  function shapingChanged(opts) {
    if (state.sid) el.curl.value = curlLine(state.sid);
    if (!state.current) return;
    writeHash(state.current.index, state.current.text);
    if (opts.tailorAsked) follow(state.current, { resubscribe: true });
  }

  el.delay.addEventListener("change", () => {
    if (!state.tail) {
      const delayMs = delaySeconds() * 1000;
      for (const item of state.held) item.due = item.arrived + delayMs;
      releaseDue(); // without a delay, everything held is shown now, in order
    }
    shapingChanged({ tailorAsked: maxRate() > 0 });
  });

  el.maxRate.addEventListener("change", () => {
    resetSampling();
    for (const item of state.held) item.due = 0; // held hits are shown now, in order, not lost
    releaseDue();
    shapingChanged({ tailorAsked: true });
  });

  function restoreFromHash() {
    const h = readHash();
    const shaping = () => [el.fields.value, el.delay.value, el.maxRate.value].join("\n");
    const before = shaping();
    const tailorAsked = maxRate() > 0;
    if (h.fields !== null) el.fields.value = h.fields;
    selectValue(el.delay, h.delay || "0");
    selectValue(el.maxRate, h.maxRate || "");
    if (!h.index || !h.query) return;
    el.index.value = h.index;
    el.query.value = h.query;
    let query;
    try { query = parseQuery(h.query); } catch (e) { showWampError(e); return; }
    if (state.current && state.current.index === h.index && state.current.text === h.query) {
      if (shaping() !== before) shapingChanged({ tailorAsked: tailorAsked || maxRate() > 0 });
      return;
    }
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
    selectValue(el.delay, h.delay);
    selectValue(el.maxRate, h.maxRate);
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
