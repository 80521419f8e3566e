// A standalone dashboard (`flowdeck serve --no-demo --ingest-token ...`) and two pipelines
// in processes of their own reporting to it: `/` lists both, a reported pipeline's pages
// are live, and a pause pressed on the dashboard reaches the reporting process (its next
// report says the stage is paused).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated, untilLive } from '../lib/browser.mjs';

const TOKEN = 'end-to-end-ingest-token';
const skip = !process.env.REPORT_BIN;
let server;
let browser;
const reporters = [];

before(async () => {
  if (skip) return;
  server = await startServer(['--no-demo', '--ingest-token', TOKEN, '--refresh-ms', '100']);
  for (const name of ['orders', 'billing']) {
    const child = spawn(process.env.REPORT_BIN, [server.url, TOKEN, name, '80'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d) => { log += d; });
    child.log = () => log;
    reporters.push(child);
  }
  browser = await launch();
});
after(async () => {
  // SIGTERM, as a service manager stops them; they drain (at most 10 s, a paused stage
  // included) and send their run's end. SIGKILL if one is still there after 20 s.
  await Promise.all(reporters.map((r) => new Promise((resolve) => {
    if (r.exitCode !== null) return resolve();
    const kill = setTimeout(() => r.kill('SIGKILL'), 20_000);
    r.on('exit', () => { clearTimeout(kill); resolve(); });
    r.kill('SIGTERM');
  })));
  await browser?.close();
  await server?.stop();
});

const api = async (path) => (await fetch(`${server.url}${path}`)).json();

test('two reporting processes are listed, live, and take a control pressed here', { skip }, async () => {
  await eventually(async () => {
    const rows = await api('/api/v1/pipelines');
    return rows.length === 2 && rows.every((r) => r.completed > 0);
  }, 30_000, 'both reporters listed with work done');
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await page.waitForURL(/\/pipelines$/);
  await hydrated(page);
  const slugs = await page.getByTestId('pipeline-row').evaluateAll((trs) => trs.map((tr) => tr.dataset.slug));
  assert.deepEqual(slugs, ['billing', 'orders']);

  await page.getByTestId('pipeline-row').first().getByTestId('pipeline-link').click();
  await page.waitForURL(/\/p\/billing\/$/);
  await untilLive(page);
  // Counts move as the other process reports.
  const completed = async () => Number((await page.getByTestId('total-completed').locator('.card-value').textContent()).replace(/,/g, ''));
  const first = await completed();
  await eventually(async () => (await completed()) > first, 10_000, 'the counts moving');

  await page.goto(`${server.url}/p/billing/workers`);
  await untilLive(page);
  // The reporting process's CPU and memory, sent with its batches.
  await eventually(async () => /CPU \d+% of a core .*memory [\d.]+ MiB/
    .test(await page.getByTestId('resources').textContent()), 10_000, 'the reporter\'s resources');
  const summary = await api('/p/billing/api/v1/summary');
  assert.ok(summary.resources.resident_bytes > 1e6, JSON.stringify(summary));
  await page.getByTestId('pause-enrich').click();
  // Paused in the reporting process: its own next snapshot says so.
  await eventually(async () => (await api('/p/billing/api/v1/stages')).find((s) => s.name === 'enrich').paused, 10_000, 'the pause reached the reporter');
  assert.equal((await api('/p/orders/api/v1/stages')).find((s) => s.name === 'enrich').paused, false);
  const audit = await api('/api/v1/audit');
  assert.ok(audit.some((a) => a.action === 'pause' && a.target === 'billing: enrich' && a.outcome === 'ok'), JSON.stringify(audit));
  assert.deepEqual(errors, []);
  await close();
});
