// Event-to-paint latency, measured from outside the page (a benchmark, run on demand):
//   cargo build --release -p flowdeck --features dashboard --example paint   # repository root
//   PAINT_BIN=../target/release/examples/paint node bench/paint.mjs [refresh-ms] [seconds] [items/s]
//
// The pipeline (flowdeck/examples/paint.rs) runs about 100,000 runtime events a second;
// one item in 500 goes to a `probe` stage that stamps the wall clock (Unix ms) into its
// error's kind as the last thing it does. Headless Chromium opens the Tasks page filtered
// to failed probes, and in every animation frame reads the rows the frame is about to
// paint: the first frame showing a stamp gives that probe's delay, Date.now() minus the
// stamp. Nothing in the page reports on itself; the page is the shipped one. Over
// `seconds` (60) it prints the distribution, runtime events per second (from the change
// feed's sequence number), and the browser's long tasks (over 50 ms) on the Tasks page.
// Then, with 100,000 items retained, it opens every built-in page afresh and records its
// long tasks over its first 8 s, the first frame's parse included.
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';

const refresh = Number(process.argv[2] ?? 250);
const seconds = Number(process.argv[3] ?? 60);
const rate = Number(process.argv[4] ?? 11_000);
const bin = process.env.PAINT_BIN;
if (!bin) throw new Error('PAINT_BIN must name the paint example (target/release/examples/paint)');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function view(url) {
  const res = await fetch(`${url}/api/view`);
  if (!res.ok) throw new Error(`/api/view answered ${res.status}`);
  const { snapshot } = await res.json();
  return { seq: snapshot.seq, submitted: snapshot.totals.submitted, at: Date.now() };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

// `every` 0: no probes (their stamps make an error kind each, which the Errors page lists).
const start = (every) => startServer([String(rate), String(every)], {
  bin,
  name: 'paint',
  env: { FLOWDECK_REFRESH_MS: String(refresh) },
});
async function fill(url) {
  const end = Date.now() + 120_000;
  while ((await view(url)).submitted < 100_000 && Date.now() < end) await sleep(500);
}
let server = await start(500);
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__long.push({ at: Math.round(e.startTime), ms: Math.round(e.duration) });
    }).observe({ type: 'longtask', buffered: true });
    // The probe: each animation frame, the stamps in the rows it is about to paint.
    window.__seen = new Set();
    window.__delays = [];
    window.__measuring = false;
    const scan = () => {
      const now = performance.timeOrigin + performance.now();
      for (const code of document.querySelectorAll('[data-testid="task-row"] code')) {
        const kind = code.textContent ?? '';
        if (kind[0] !== 't' || window.__seen.has(kind)) continue;
        const stamp = Number(kind.slice(1));
        if (!Number.isFinite(stamp)) continue;
        window.__seen.add(kind);
        if (window.__measuring) window.__delays.push(now - stamp);
      }
      requestAnimationFrame(scan);
    };
    requestAnimationFrame(scan);
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.url}/tasks?status=failed&stage=probe`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="task-row"]').length > 0, null, { timeout: 60_000 });
  // Until the ring holds 100,000 items, as a long run's does.
  await fill(server.url);
  await sleep(2_000);

  await page.evaluate(() => { window.__delays = []; window.__long = []; window.__measuring = true; });
  const v0 = await view(server.url);
  await sleep(seconds * 1000);
  const v1 = await view(server.url);
  const { delays, long } = await page.evaluate(() => {
    window.__measuring = false;
    return { delays: window.__delays, long: window.__long.map((t) => t.ms) };
  });
  const sorted = delays.sort((a, b) => a - b);
  const ms = (x) => (x === undefined ? null : Math.round(x));

  // Every built-in page, opened afresh with 100,000 items retained: the long tasks until
  // it is live (loading the module, hydrating, the first frame), and over 8 s after. The
  // same load without probes.
  await page.close();
  await server.stop();
  server = await start(0);
  await fill(server.url);
  const pages = ['/', '/workers', '/tasks', '/questions', '/errors', '/streaming', '/metrics', '/logs', '/runs', '/alerts'];
  const perPage = {};
  for (const path of pages) {
    const p = await context.newPage();
    p.on('pageerror', (e) => errors.push(`${path}: ${e}`));
    await p.goto(`${server.url}${path}`);
    await p.waitForFunction(() => document.querySelector('.badge[role="status"]')?.textContent === 'live', null, { timeout: 30_000 });
    const liveAt = await p.evaluate(() => performance.now());
    await sleep(8_000);
    const tasks = await p.evaluate(() => window.__long);
    const over = (list) => list.filter((t) => t.ms > 50).map((t) => t.ms);
    perPage[path] = {
      live_after_ms: Math.round(liveAt),
      until_live_over_50ms: over(tasks.filter((t) => t.at < liveAt)),
      once_live_over_50ms: over(tasks.filter((t) => t.at >= liveAt)),
    };
    await p.close();
  }

  console.log(JSON.stringify({
    refresh_ms: refresh,
    seconds,
    items_per_sec_fed: rate,
    runtime_events_per_sec: Math.round((v1.seq - v0.seq) / ((v1.at - v0.at) / 1000)),
    items_retained_at_least: Math.min(v1.submitted, 100_000),
    probes_painted: sorted.length,
    event_to_paint_ms: {
      min: ms(sorted[0]),
      p50: ms(pct(sorted, 0.5)),
      p90: ms(pct(sorted, 0.9)),
      p95: ms(pct(sorted, 0.95)),
      p99: ms(pct(sorted, 0.99)),
      max: ms(sorted.at(-1)),
    },
    tasks_page_long_tasks_while_measuring: long,
    long_tasks_per_page_first_8s: perPage,
    page_errors: errors,
  }, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
