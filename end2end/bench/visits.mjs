// Counts completed items whose record does not yet have every stage it passed closed
// (run on demand):
//   cargo build --release -p flowdeck   # repository root, or scripts/build.sh
//   FLOWDECK_BIN=../target/release/flowdeck node bench/visits.mjs [seconds] [demo rate]
//
// Runs the demo (at 600 documents a second by default its enrich stage is saturated:
// eight workers on model calls of 20-180 ms), waits, then reads every completed item of
// the newest 1,000 through the API and counts those whose enrich visit has no outcome,
// printing their visits and history. On 2026-12-04 0-3 of about 700 were, always among
// the newest: each worker sends its events in batches (within 50 ms), so the store's
// worker can report an item finished before the enrich worker's batch with its
// completion arrives. Traced with counters at both ends: no event is lost, the record
// is whole once that batch lands. What stays wrong is what was handed on at the finish:
// the run store's copy of such an item (`FinishedSink`) keeps the open visit.
import { startServer } from '../lib/server.mjs';

const seconds = Number(process.argv[2] ?? 60);
const rate = process.argv[3] ?? '600';
const server = await startServer(['--demo-rate', rate]);
try {
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r = await (await fetch(`${server.url}/api/v1/tasks?status=completed&limit=1000`)).json();
  let ok = 0;
  let open = 0;
  for (const t of r.items.filter((t) => t.stage === 3)) {
    const { detail, stage_names: names } = await (await fetch(`${server.url}/api/v1/tasks/${t.id}`)).json();
    const enrich = detail.visits.find((v) => names[v.stage] === 'enrich');
    if (enrich?.outcome === 'completed') {
      ok += 1;
      continue;
    }
    open += 1;
    const visits = detail.visits.map((v) => `${names[v.stage]} x${v.attempts} ${v.outcome ?? 'open'}`);
    const history = detail.history.map((e) => `${e.kind}@${names[e.stage]}#${e.attempt} ${e.at_us}`);
    console.log(`item ${t.id}: ${visits.join(', ')} | ${history.join(', ')}`);
  }
  console.log(`${ok + open} completed items read: ${ok} with every visit closed, ${open} with enrich open`);
} finally {
  await server.stop();
}
