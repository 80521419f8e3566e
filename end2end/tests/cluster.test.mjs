// A pipeline whose middle stage runs in worker processes over NATS JetStream
// (flowdeck/examples/cluster.rs: one binary, driver and `worker` roles) on a real
// nats-server: the driver's workers page lists each worker process with its workers, a
// pause pressed there reaches the processes (their heartbeats say so), and a worker
// process killed with SIGKILL is marked lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const skip = !process.env.CLUSTER_BIN || !process.env.NATS_SERVER;
let nats;
let store;
let driver;
let browser;
const workers = [];
// What the worker processes wrote to stderr and how they ended: named by a failure, not shown.
const said = [];

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

before(async () => {
  if (skip) return;
  const port = await freePort();
  store = mkdtempSync(join(tmpdir(), 'nats-store-'));
  nats = spawn(process.env.NATS_SERVER, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], { stdio: 'ignore' });
  const url = `nats://127.0.0.1:${port}`;
  for (let i = 0; i < 2; i++) {
    const w = spawn(process.env.CLUSTER_BIN, ['worker', '--nats', url], { stdio: ['ignore', 'ignore', 'pipe'] });
    w.stderr.on('data', (d) => said.push(`worker ${i}: ${d}`));
    w.on('exit', (code, signal) => said.push(`worker ${i} exited (${code ?? signal})`));
    workers.push(w);
  }
  // Long enough to outlast the test: 16 workers at 20 ms an item.
  driver = await startServer(['--nats', url, '--items', '200000'], { bin: process.env.CLUSTER_BIN, name: 'cluster' });
  browser = await launch();
});
after(async () => {
  for (const p of [...workers, nats]) p?.kill('SIGKILL');
  if (driver) {
    process.kill(driver.pid, 'SIGKILL');
    rmSync(driver.dir, { recursive: true, force: true });
    rmSync(driver.data, { recursive: true, force: true });
  }
  if (store) rmSync(store, { recursive: true, force: true });
  await browser?.close();
});

const api = async (path) => (await fetch(`${driver.url}${path}`)).json();

test('the workers page shows each worker process, a pause reaches them, a killed one is lost', { skip }, async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${driver.url}/workers`);
  await hydrated(page);
  const sections = page.locator('section.process');
  // Both processes, each with its 8 workers, arrive in the browser (asked for each second).
  await eventually(async () => (await sections.count()) === 2, 30_000, 'two worker processes listed')
    .catch((e) => { throw new Error(`${e.message}; the workers said: ${said.join(' | ') || 'nothing'}`); });
  for (const section of await sections.all()) {
    assert.match(await section.locator('h2').textContent(), /^embed on .+:\d+/);
    assert.equal(await section.locator('tbody tr').count(), 8);
  }
  await eventually(async () => (await page.locator('section.process tr[data-state="busy"]').count()) > 0, 10_000, 'workers busy');
  // Each process says what it uses, from its heartbeats.
  await eventually(async () => {
    const lines = await page.locator('section.process .resources').allTextContents();
    return lines.length === 2 && lines.every((l) => /CPU \d+% of a core .*memory [\d.]+ MiB.*runtime: \d+ workers/.test(l));
  }, 15_000, 'each process\'s CPU and memory');

  await page.getByTestId('pause-embed').click();
  await eventually(async () => {
    const procs = await api('/api/v1/processes');
    return procs.length === 2 && procs.every((p) => p.stages[0].paused);
  }, 10_000, 'every process paused, as its heartbeat says');
  await eventually(async () => (await page.locator('section.process .tag', { hasText: 'paused' }).count()) === 2, 10_000, 'paused on the page');
  // The same button resumes (its row is keyed by the stage's state).
  await eventually(async () => (await page.getByTestId('pause-embed').textContent()) === 'Resume', 10_000, 'the button says Resume');
  await page.getByTestId('pause-embed').click();

  workers[0].kill('SIGKILL');
  await eventually(async () => (await page.locator('section.process .tag', { hasText: 'lost' }).count()) === 1, 15_000, 'the killed process marked lost');
  const procs = await api('/api/v1/processes');
  assert.equal(procs.filter((p) => p.lost).length, 1, JSON.stringify(procs));
  assert.equal(procs.find((p) => p.lost).pid, workers[0].pid);
  assert.deepEqual(errors, []);
  await close();
});
