// Child of cost-bench.ts: polls a /healthz URL back-to-back from its own process (so the parent's work sending the
// bombs is not in the figures) until told to stop, then sends back the wall-clock latencies (ms).
let stopping = false;
process.on('message', (msg: { url?: string; stop?: boolean }) => {
  if (msg.stop) stopping = true;
  else if (msg.url) void poll(msg.url);
});

async function poll(url: string) {
  const lat: number[] = [];
  await fetch(url).then((r) => r.arrayBuffer()); // the connection is open before anything is timed
  process.send!('started');
  while (!stopping) {
    const t0 = performance.now();
    await fetch(url).then((r) => r.arrayBuffer());
    lat.push(performance.now() - t0);
  }
  process.send!(lat, () => process.exit(0));
}
