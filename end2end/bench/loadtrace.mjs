// What opening a page costs the browser's main thread, task by task (run on demand):
//   cargo build --release -p flowdeck --features dashboard --example paint   # repository root
//   PAINT_BIN=../target/release/examples/paint node bench/loadtrace.mjs [path ...]
//
// The paint example's pipeline runs at about 100,000 runtime events a second until
// 100,000 items are retained (as in bench/paint.mjs); then each page is opened afresh
// under a Chromium trace. For each it prints its longest main-thread tasks, its longest
// calls into the page's code, and the time V8 spent compiling wasm functions lazily (on
// their first call, on the main thread). With DETAIL=1, what each task over 45 ms is
// made of. Options, as environment variables:
//   IDLE=1   pause every stage once the items are retained, so the server is idle and
//            the figures are the page's own, not those of a core shared with the server
//   XARGS='--js-flags=--no-wasm-lazy-compilation'   more Chromium flags, to compare
//   REFRESH=100   the stream's refresh in ms (250, the default, unless given)
import { launch } from '../lib/browser.mjs';
import { startServer } from '../lib/server.mjs';

const bin = process.env.PAINT_BIN;
if (!bin) throw new Error('PAINT_BIN must name the paint example (target/release/examples/paint)');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const paths = process.argv.length > 2 ? process.argv.slice(2) : ['/', '/workers', '/tasks', '/errors', '/metrics'];
const ms = (us) => Math.round(us / 1000);

const server = await startServer(['11000', '0'], { bin, name: 'paint', env: { FLOWDECK_REFRESH_MS: process.env.REFRESH ?? '250' } });
const browser = await launch(process.env.XARGS ? process.env.XARGS.split(' ') : []);
try {
  const end = Date.now() + 120_000;
  let snapshot;
  do {
    await sleep(500);
    ({ snapshot } = await (await fetch(`${server.url}/api/view`)).json());
  } while (snapshot.totals.submitted < 100_000 && Date.now() < end);
  if (process.env.IDLE) {
    for (const stage of snapshot.stages) {
      const res = await fetch(`${server.url}/api/v1/stages/${stage.name}/pause`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
      });
      if (!res.ok) throw new Error(`pausing ${stage.name}: ${res.status}`);
    }
    await sleep(2_000);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  for (const path of paths) {
    const page = await context.newPage();
    await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'v8.wasm', 'blink', 'loading', 'toplevel'] });
    await page.goto(`${server.url}${path}`);
    await page.waitForFunction(() => document.querySelector('.badge[role="status"]')?.textContent === 'live', null, { timeout: 30_000 });
    await sleep(1_500);
    const { traceEvents } = JSON.parse((await browser.stopTracing()).toString());
    // The renderer's main thread, where the page's tasks run.
    const main = new Set(traceEvents
      .filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
      .map((e) => `${e.pid}:${e.tid}`));
    const events = traceEvents.filter((e) => main.has(`${e.pid}:${e.tid}`) && e.ph === 'X');
    const tasks = events.filter((e) => e.name === 'RunTask');
    const longest = (name) => events.filter((e) => e.name === name).map((e) => ms(e.dur)).sort((a, b) => b - a).slice(0, 3);
    const lazy = events.filter((e) => e.name === 'wasm.CompileLazy').reduce((sum, e) => sum + e.dur, 0);
    console.log(`${path}: longest tasks ${longest('RunTask').join(', ')} ms; longest calls into the page ${longest('FunctionCall').join(', ')} ms; lazy wasm compilation ${ms(lazy)} ms in all`);
    if (process.env.DETAIL) {
      for (const t of tasks.filter((t) => t.dur > 45_000)) {
        console.log(`  a task of ${ms(t.dur)} ms:`);
        const inside = events.filter((e) => e !== t && e.ts >= t.ts && e.ts + e.dur <= t.ts + t.dur && e.dur > 3_000);
        for (const e of inside.sort((a, b) => a.ts - b.ts)) {
          const depth = inside.filter((o) => o !== e && o.ts <= e.ts && o.ts + o.dur >= e.ts + e.dur).length;
          const what = e.args?.data?.url ?? e.args?.data?.type ?? '';
          console.log(`    ${'  '.repeat(depth)}${e.name} ${ms(e.dur)} ms ${String(what).slice(0, 80)}`);
        }
      }
    }
    await page.close();
  }
} finally {
  await browser.close();
  await server.stop();
}
