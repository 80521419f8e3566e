// Counts completed items whose record does not have every stage it passed closed, live
// and in the run store (run on demand):
//   cargo build --release -p flowdeck   # repository root, or scripts/build.sh
//   FLOWDECK_BIN=../target/release/flowdeck node bench/visits.mjs [seconds] [demo rate]
//
// Runs the demo (at 600 documents a second by default its enrich stage is saturated:
// eight workers on model calls of 20-180 ms), waits, then reads every completed item of
// the newest 1,000 through the API and counts those whose enrich visit has no outcome,
// printing their visits and history. Each worker sends its events in batches (within
// 50 ms), so the store's worker can report an item finished before the enrich worker's
// batch with its completion arrives: 0-3 of about 700 read live show it (no event is
// lost; the record is whole once that batch lands). Two seconds later the same items are
// read from the run store: its copy must be whole too. Before the tracker handed such
// late changes to the store (`FinishedSink::amended`), the stored copy kept the open
// visit for good.
import { startServer } from '../lib/server.mjs';

const seconds = Number(process.argv[2] ?? 60);
const rate = process.argv[3] ?? '600';
const server = await startServer(['--demo-rate', rate]);
// An item's enrich visit, from a task read (live or stored).
const enrichOf = ({ detail, stage_names: names }) => detail.visits.find((v) => names[v.stage] === 'enrich');
try {
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r = await (await fetch(`${server.url}/api/v1/tasks?status=completed&limit=1000`)).json();
  let ok = 0;
  let open = 0;
  const ids = [];
  for (const t of r.items.filter((t) => t.stage === 3)) {
    ids.push(t.id);
    const read = await (await fetch(`${server.url}/api/v1/tasks/${t.id}`)).json();
    if (enrichOf(read)?.outcome === 'completed') {
      ok += 1;
      continue;
    }
    open += 1;
    const { detail, stage_names: names } = read;
    const visits = detail.visits.map((v) => `${names[v.stage]} x${v.attempts} ${v.outcome ?? 'open'}`);
    const history = detail.history.map((e) => `${e.kind}@${names[e.stage]}#${e.attempt} ${e.at_us}`);
    console.log(`item ${t.id}: ${visits.join(', ')} | ${history.join(', ')}`);
  }
  console.log(`${ok + open} completed items read live: ${ok} with enrich closed, ${open} with it open`);
  await new Promise((r) => setTimeout(r, 2000));
  const runs = await (await fetch(`${server.url}/api/v1/runs`)).json();
  const run = runs[0].id;
  let stored = 0;
  let storedOpen = 0;
  let notStored = 0;
  for (const id of ids) {
    const res = await fetch(`${server.url}/api/v1/runs/${run}/tasks/${id}`);
    if (res.status === 404) {
      notStored += 1;
      continue;
    }
    stored += 1;
    const enrich = enrichOf(await res.json());
    if (enrich?.outcome !== 'completed') {
      storedOpen += 1;
      console.log(`stored item ${id}: enrich ${enrich?.outcome ?? 'open'}`);
    }
  }
  console.log(`the same items in the run store: ${stored} read, ${storedOpen} with enrich open, ${notStored} not stored`);
} finally {
  await server.stop();
}
