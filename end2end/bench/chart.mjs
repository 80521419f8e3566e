// The Chart widget with 108,000 points (a benchmark, run on demand, not a test):
//   cargo run --release --example chart_load -- 3199 &   # from the repository root
//   node bench/chart.mjs http://127.0.0.1:3199
// Opens /pages/load (120 series of 900 points on one canvas chart, refetched every second)
// and measures for 20 s: the browser's tasks longer than 50 ms, the gaps between animation
// frames (p50/p99/max), and how long one fetch-decode-draw cycle takes.
import { launch } from '../lib/browser.mjs';

const url = process.argv[2] ?? 'http://127.0.0.1:3199';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__long.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
    window.__frames = [];
    let last = performance.now();
    const frame = (t) => { window.__frames.push(t - last); last = t; requestAnimationFrame(frame); };
    requestAnimationFrame(frame);
  });
  const page = await context.newPage();
  await page.goto(`${url}/pages/load`);
  await page.waitForFunction(() => document.querySelectorAll('.chart-legend li').length >= 120, null, { timeout: 30_000 });
  await sleep(3000);
  await page.evaluate(() => { window.__long = []; window.__frames = []; });
  const t0 = Date.now();
  await sleep(20_000);
  const r = await page.evaluate(() => ({ long: window.__long, frames: window.__frames }));
  // The series fetches the widget made, from the browser's own resource timings.
  const fetches = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/series'))
    .slice(-10)
    .map((e) => ({ ms: e.duration, bytes: e.decodedBodySize })));
  const lines = await page.locator('.chart-legend li').count();
  const sorted = [...r.frames].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  console.log(JSON.stringify({
    seconds: (Date.now() - t0) / 1000,
    lines,
    points_per_refresh: lines * 900,
    payload_kb: Math.round(Math.max(...fetches.map((f) => f.bytes)) / 1024),
    fetch_ms_max: Math.round(Math.max(...fetches.map((f) => f.ms))),
    frames: sorted.length,
    frame_gap_ms: { p50: pct(0.5)?.toFixed(1), p99: pct(0.99)?.toFixed(1), max: sorted.at(-1)?.toFixed(1) },
    long_tasks: r.long.length,
    long_task_ms: { max: Math.round(Math.max(0, ...r.long)), mean: Math.round(r.long.reduce((a, b) => a + b, 0) / Math.max(1, r.long.length)) },
  }, null, 1));
} finally {
  await browser.close();
}
