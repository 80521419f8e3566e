// A dashboard of two pipelines (`--demo-pipelines 2`): `/` is their list, sorted on the
// server; a count opens that pipeline's task list under its own base; its pages stream its
// own run, and a control pressed there reaches it and not the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated, untilLive } from '../lib/browser.mjs';

let server;
let browser;
const FIRST = 'document-enrichment';
const SECOND = 'document-enrichment-2';
before(async () => {
  server = await startServer(['--demo-pipelines', '2', '--demo-rate', '100', '--refresh-ms', '100']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const api = async (path) => (await fetch(`${server.url}${path}`)).json();

test('the list shows both pipelines, sorted by the server, each count linking to its tasks', async () => {
  await eventually(async () => (await api('/api/v1/pipelines')).every((r) => r.completed > 0), 20_000, 'work done in both');
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await page.waitForURL(/\/pipelines$/);
  await hydrated(page);
  const rows = page.getByTestId('pipeline-row');
  const slugs = async () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.slug));
  assert.deepEqual(await slugs(), [FIRST, SECOND], 'by name');
  assert.equal(await rows.first().getByTestId('pipeline-link').textContent(), 'document-enrichment');

  // Sorting is the server's: by name the other way, then by completed, as the API says.
  await page.getByTestId('sort-name').click();
  await eventually(async () => JSON.stringify(await slugs()) === JSON.stringify([SECOND, FIRST]), 10_000, 'names descending');
  await page.getByTestId('sort-completed').click();
  await eventually(async () => {
    const expected = (await api('/api/v1/pipelines?sort=completed&order=desc')).map((r) => r.slug);
    return JSON.stringify(await slugs()) === JSON.stringify(expected);
  }, 10_000, 'most completed first, as the API sorts');
  // Filtered by name.
  await page.getByTestId('pipeline-filter').fill('-2');
  await page.getByTestId('pipeline-filter').press('Enter');
  await eventually(async () => JSON.stringify(await slugs()) === JSON.stringify([SECOND]), 10_000, 'only the second');

  // A count opens that pipeline's task list, on that status.
  await rows.first().getByTestId('count-completed').click();
  await page.waitForURL(new RegExp(`/p/${SECOND}/tasks\\?status=completed$`));
  await hydrated(page);
  assert.equal(await page.getByTestId('tab-completed').getAttribute('aria-selected'), 'true');
  await eventually(async () => (await page.getByTestId('task-row').count()) > 0, 10_000, 'completed rows');
  const statuses = await page.getByTestId('task-row').evaluateAll((r) => r.map((e) => e.dataset.status));
  assert.ok(statuses.every((s) => s === 'completed'), statuses.join());
  // Its navigation stays under its base.
  assert.equal(await page.locator('nav[aria-label="Main"] a', { hasText: 'Workers' }).getAttribute('href'), `/p/${SECOND}/workers`);
  assert.deepEqual(errors, []);
  await close();
});

test("a pipeline's pages stream its run, and its controls reach it alone", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/p/${SECOND}/workers`);
  await untilLive(page);
  // The live stream is the second pipeline's: the workers page counts what its API counts.
  const stage = page.locator('.stage-workers[data-stage="enrich"]');
  await page.getByTestId('pause-enrich').click();
  await eventually(async () => (await stage.locator('h2 .tag').count()) === 1, 5_000, 'the paused tag');
  const stages = async (base) => Object.fromEntries((await api(`${base}/api/v1/stages`)).map((s) => [s.name, s.paused]));
  assert.equal((await stages(`/p/${SECOND}`)).enrich, true, 'paused where it was pressed');
  assert.equal((await stages('')).enrich, false, 'the first pipeline goes on');
  assert.equal((await stages(`/p/${FIRST}`)).enrich, false);
  // Client-side navigation keeps to the base, and the stream with it.
  await page.locator('nav[aria-label="Main"] a', { hasText: 'Overview' }).click();
  await page.waitForURL(new RegExp(`/p/${SECOND}/$`));
  await eventually(async () => (await page.getByTestId('total-completed').count()) === 1, 10_000, 'the overview');
  assert.equal(await page.getByRole('status').textContent(), 'live');
  const audit = await api(`/p/${SECOND}/api/v1/audit`);
  assert.ok(audit.some((a) => a.action === 'pause' && a.target.startsWith('document-enrichment 2: ')), JSON.stringify(audit));
  // The navigation and the brand lead back to the list.
  assert.equal(await page.getByTestId('all-pipelines').getAttribute('href'), '/pipelines');
  await page.getByTestId('brand').click();
  await page.waitForURL(/\/pipelines$/);
  assert.deepEqual(errors, []);
  await close();
});
