// Health warnings live on the overview: the demo's enrich stage is paused from the API
// with work queued, and a "starved stage" warning appears on the overview (panel, badge in
// the top bar, the graph's node, the health line) without a reload, then shows as cleared
// once the stage is resumed. The config file's [warnings] shortens the rule's 30 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, untilLive } from '../lib/browser.mjs';

let server;
let browser;
const dir = mkdtempSync(join(tmpdir(), 'flowdeck-warnings-'));
before(async () => {
  const config = join(dir, 'flowdeck.toml');
  writeFileSync(config, `
[warnings]
starved_ms = 1000
clear_ms = 2000
`);
  server = await startServer(['--refresh-ms', '100', '--config', config]);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const post = (path) => fetch(`${server.url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
});

test('a warning appears on the overview while a stage starves, and clears once it is resumed', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await untilLive(page);
  assert.equal(await page.getByTestId('no-warnings').count(), 1, 'a quiet demo has no warning');
  assert.equal(await page.getByTestId('warnings-badge').count(), 0);
  // One verdict: with no warning, the health line is ok (the demo's failures are a figure
  // on it, not a second rule saying "warn").
  assert.equal(await page.getByTestId('health').getAttribute('data-level'), 'ok',
    await page.getByTestId('health').textContent());

  assert.equal((await post('/api/v1/stages/enrich/pause')).status, 200);
  const warning = page.locator('li.warning[data-rule="starved_stage"][data-stage="enrich"]');
  await eventually(async () => (await warning.getAttribute('data-state').catch(() => null)) === 'firing',
    15_000, 'the starved-stage warning, firing');
  assert.match(await warning.textContent(), /stage enrich has \d+ items queued and nothing taking them: its workers are paused/);
  assert.equal(await page.getByTestId('warnings-badge').textContent(), '1 warning');
  assert.match(await page.getByTestId('health').textContent(), /starved stage at enrich/);
  assert.equal(await page.locator('.pipeline-graph .node[data-stage="enrich"]').getAttribute('data-warnings'), '1');
  const api = await (await fetch(`${server.url}/api/v1/warnings`)).json();
  assert.deepEqual(api.current.map((w) => [w.rule, w.stage]), [['starved_stage', 'enrich']]);

  assert.equal((await post('/api/v1/stages/enrich/resume')).status, 200);
  await eventually(async () => (await warning.getAttribute('data-state')) === 'cleared', 15_000, 'the warning, cleared');
  assert.match(await warning.textContent(), /cleared/);
  await eventually(async () => (await page.getByTestId('warnings-badge').count()) === 0, 5_000, 'the badge gone');
  assert.equal(await page.locator('.pipeline-graph .node[data-stage="enrich"]').getAttribute('data-warnings'), '0');
  assert.deepEqual(errors, []);
  await close();
});
