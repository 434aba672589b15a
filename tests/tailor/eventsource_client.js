// A stock WHATWG EventSource (Node's, as in browsers) on a tailor SSE URL:
// prints one JSON line per thing it sees, for tests/tailor/test_tail_formats.py.
const url = process.argv[2];
const es = new EventSource(url);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
es.onopen = () => say({ type: "open" });
es.onerror = () => say({ type: "error", readyState: es.readyState });
for (const name of ["hit", "gap", "end", "subscription"]) {
  es.addEventListener(name, (e) => say({ type: name, id: e.lastEventId, data: e.data }));
}
// Node's reconnect timer does not keep the process alive; a browser tab would be.
const alive = setInterval(() => {}, 1 << 30);
process.on("SIGTERM", () => { clearInterval(alive); es.close(); process.exit(0); });
