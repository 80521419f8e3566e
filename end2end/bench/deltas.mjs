// Bytes per stream frame at the demo's default rate (a benchmark, run on demand):
//   FLOWDECK_BIN=../target/release/flowdeck node bench/deltas.mjs [seconds]
// Reads /api/events for a while once the demo has failures, and prints the mean and
// largest delta, how many carried error changes, and, for comparison, the size of the
// whole error summary (/api/v1/errors), which every delta with a change carried before
// deltas sent only what changed.
import { startServer } from '../lib/server.mjs';

const seconds = Number(process.argv[2] ?? 30);
const server = await startServer([]);
try {
  await new Promise((r) => setTimeout(r, 20_000)); // let failures accumulate
  const ctl = new AbortController();
  const res = await fetch(`${server.url}/api/events`, { signal: ctl.signal });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  const deltas = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, cut);
      pending = pending.slice(cut + 2);
      if (!event.includes('event: delta') && !event.includes('event:delta')) continue;
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
      const delta = JSON.parse(data);
      deltas.push({ bytes: Buffer.byteLength(data), errors: delta.errors ? Buffer.byteLength(JSON.stringify(delta.errors)) : 0 });
    }
  }
  ctl.abort();
  const summary = Buffer.byteLength(await (await fetch(`${server.url}/api/v1/errors`)).text());
  const withErrors = deltas.filter((d) => d.errors > 0);
  const mean = (xs) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  console.log(JSON.stringify({
    seconds,
    deltas: deltas.length,
    mean_delta_bytes: mean(deltas.map((d) => d.bytes)),
    max_delta_bytes: Math.max(0, ...deltas.map((d) => d.bytes)),
    deltas_with_error_changes: withErrors.length,
    mean_error_part_bytes: mean(withErrors.map((d) => d.errors)),
    whole_error_summary_bytes: summary,
    mean_delta_bytes_if_the_whole_summary_were_sent: mean(deltas.map((d) => d.bytes - d.errors + (d.errors > 0 ? summary : 0))),
  }, null, 2));
} finally {
  await server.stop();
}
