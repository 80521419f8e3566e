// The live dashboard under load (a benchmark, run on demand, not a test):
//   FLOWDECK_BIN=../target/release/flowdeck node bench/live.mjs [refresh-ms] [demo-rate]
// Pushes the demo with instant tasks, opens /tasks in headless Chromium until 100,000 items
// are tracked, then measures for 20 s: runtime events per second, the delay from a runtime
// event to the page painting it (per frame, from the oldest event the frame carries:
// p50/p95/p99/max), browser tasks longer than 50 ms on each list page (/tasks and
// /errors, scrolled), and the server's CPU with that page alone and with 20 more
// dashboards streaming.
import { readFileSync } from 'node:fs';
import { startServer } from '../lib/server.mjs';
import { launch } from '../lib/browser.mjs';

const refresh = Number(process.argv[2] ?? 100);
const rate = Number(process.argv[3] ?? 5000);
const TICK = 100; // USER_HZ on Linux

const cpuTicks = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
};
const rssMb = (pid) => Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096 / 2 ** 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function cpuOver(pid, ms) {
  const t0 = cpuTicks(pid); const w0 = Date.now();
  await sleep(ms);
  return ((cpuTicks(pid) - t0) / TICK) / ((Date.now() - w0) / 1000) * 100;
}

// The change feed's position: the count of runtime events so far.
async function seqNow(url) {
  const res = await fetch(`${url}/api/view`);
  if (!res.ok) throw new Error(`/api/view answered ${res.status}`);
  const full = await res.json();
  return { seq: full.snapshot.seq, items: full.snapshot.totals.submitted, at: Date.now() };
}

const server = await startServer(['--refresh-ms', String(refresh), '--demo-rate', String(rate), '--demo-latency', '0']);
const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.url}/tasks`);
  const count = async () => Number((await page.getByTestId('tab-all').locator('.count').textContent()).replace(/,/g, ''));
  const warmEnd = Date.now() + 90_000;
  while ((await count()) < 100_000 && Date.now() < warmEnd) await sleep(500);
  const tracked = await count();

  // Measure: the page follows the stream while someone scrolls the list.
  await page.evaluate(() => { window.__flowdeckLagReset(); window.__longTasks = []; });
  const s0 = await seqNow(server.url);
  const scroller = (async () => {
    for (let i = 0; i < 40; i++) {
      await page.getByTestId('task-list').evaluate((el, y) => { el.scrollTop = y; }, (i % 10) * 20_000);
      await sleep(500);
    }
  })();
  const cpuOne = await cpuOver(server.pid, 20_000);
  await scroller;
  const s1 = await seqNow(server.url);
  const lag = JSON.parse(await page.evaluate(() => window.__flowdeckLag()));
  const longTasks = await page.evaluate(() => window.__longTasks);
  const eventsPerSec = (s1.seq - s0.seq) / ((s1.at - s0.at) / 1000);

  // The other list page under the same load: /errors, scrolled for 15 s.
  // Measured once the page is live: the first full frame (100,000 rows) is one parse on
  // arrival, counted apart.
  await page.evaluate(() => { window.__longTasks = []; });
  await page.goto(`${server.url}/errors`);
  const live = async () => (await page.getByRole('status').textContent()) === 'live';
  for (let i = 0; i < 100 && !(await live()); i++) await sleep(100);
  await sleep(1_000);
  const errorsLoadTasks = await page.evaluate(() => window.__longTasks);
  await page.evaluate(() => { window.__longTasks = []; });
  for (let i = 0; i < 30; i++) {
    await page.evaluate((y) => window.scrollTo(0, y), (i % 6) * 400);
    await sleep(500);
  }
  const errorsLongTasks = await page.evaluate(() => window.__longTasks);

  // 20 more dashboards: 20 open streams read by this process.
  const controllers = [];
  for (let i = 0; i < 20; i++) {
    const ctl = new AbortController();
    controllers.push(ctl);
    fetch(`${server.url}/api/events`, { signal: ctl.signal }).then(async (res) => {
      const reader = res.body.getReader();
      for (;;) { const { done } = await reader.read(); if (done) break; }
    }).catch(() => {});
  }
  await sleep(2_000);
  const cpuTwenty = await cpuOver(server.pid, 10_000);
  for (const c of controllers) c.abort();

  const result = {
    refresh_ms: refresh,
    demo_rate: rate,
    items_tracked: tracked,
    runtime_events_per_sec: Math.round(eventsPerSec),
    event_to_paint_ms: lag,
    tasks_page_long_tasks_over_50ms: longTasks.length,
    tasks_page_longest_task_ms: Math.round(Math.max(0, ...longTasks)),
    errors_page_load_long_tasks: errorsLoadTasks.map(Math.round),
    errors_page_long_tasks_over_50ms: errorsLongTasks.length,
    errors_page_longest_task_ms: Math.round(Math.max(0, ...errorsLongTasks)),
    server_cpu_percent_1_dashboard: Math.round(cpuOne),
    server_cpu_percent_21_dashboards: Math.round(cpuTwenty),
    server_rss_mb: Math.round(rssMb(server.pid)),
    page_errors: errors,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
