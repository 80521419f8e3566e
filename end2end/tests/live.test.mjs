// The live path end to end: server-rendered first paint, hydration, one EventSource,
// values changing without a reload, a working click handler, no console errors, a real 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, untilLive } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  server = await startServer(['--refresh-ms', '100']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the first paint has the pipeline before any script runs', async () => {
  const { page, close } = await watchedPage(browser, { javaScriptEnabled: false });
  await page.goto(server.url);
  assert.equal(await page.getByTestId('pipeline-name').textContent(), 'document-enrichment');
  const submitted = await page.getByTestId('total-submitted').locator('.card-value').textContent();
  assert.match(submitted, /^[\d,]+$/);
  assert.equal(await page.getByTestId('stages').locator('tbody tr').count(), 4, 'one row per stage');
  await close();
});

test('after hydration the numbers move without a reload, over one stream', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const streams = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/events') streams.push(r.url()); });
  await page.goto(server.url);
  await page.evaluate(() => { window.__sameDocument = true; });
  await untilLive(page, 10_000, 'the stream to go live');
  const read = () => page.getByTestId('total-submitted').locator('.card-value').textContent();
  const before = await read();
  await eventually(async () => (await read()) !== before, 10_000, 'the submitted count to change');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
  assert.equal(streams.length, 1, 'one EventSource per tab');
  assert.equal(new URL(streams[0]).searchParams.get('rows'), 'none', 'the overview shows no task rows');
  assert.deepEqual(errors, []);
  await close();
});

test('the task list subscribes to the window of rows it shows, moved as it scrolls', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const streams = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/events') streams.push(new URL(r.url())); });
  await page.goto(server.url);
  await untilLive(page);
  assert.deepEqual(streams.map((u) => u.searchParams.get('rows')), ['none']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tasks', exact: true }).click();
  // The stream reopens for the top of the list, resuming where the page was (`last`):
  // the window comes, not a full frame.
  await eventually(async () => streams.length === 2, 10_000, 'a stream with a window');
  const top = streams[1].searchParams;
  assert.equal(top.get('rows'), 'window');
  assert.equal(top.get('tab'), 'all');
  assert.equal(top.get('from'), '0');
  assert.ok(Number(top.get('count')) < 1000, 'a window, not every row');
  assert.match(top.get('last') ?? '', /^\d+$/, 'resumed from the frame the page had');
  const rows = page.locator('[data-testid="task-row"]');
  await eventually(async () => (await rows.count()) > 0, 10_000, 'rows listed');
  const idOf = async (row) => Number((await row.locator('span').first().textContent()).slice(1));
  const matched = async () => Number((await page.getByTestId('match-count').textContent()).replace(/\D/g, ''));
  await eventually(async () => (await matched()) > 400, 30_000, 'over 400 items listed');
  // Deeper into the list: the window moves there, and the rows there are older ones.
  await page.getByTestId('task-list').evaluate((el) => { el.scrollTop = 300 * 32; });
  await eventually(async () => Number(streams.at(-1).searchParams.get('from')) > 200, 10_000, 'the window moved');
  // Rows about 290 from the top: older than the newest item by at least 200 ids, however
  // many came meanwhile (ids only grow).
  const newestNow = async () => (await (await fetch(`${server.url}/api/v1/tasks?limit=1`)).json()).items[0].id;
  await eventually(async () => (await rows.count()) > 0 && (await idOf(rows.first())) < (await newestNow()) - 200, 10_000, 'older rows in view');
  // Back on the overview, the stream goes back to no rows, resuming again.
  const before = streams.length;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview', exact: true }).click();
  await eventually(async () => streams.length === before + 1, 10_000, 'a stream without rows');
  assert.equal(streams.at(-1).searchParams.get('rows'), 'none');
  assert.match(streams.at(-1).searchParams.get('last') ?? '', /^\d+$/);
  assert.deepEqual(errors, []);
  await close();
});

test('the pause button works and freezes the view', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(server.url);
  await untilLive(page);
  const button = page.getByRole('button', { name: 'Pause updates' });
  await button.click();
  const resume = page.getByRole('button', { name: 'Resume updates' });
  assert.equal(await resume.getAttribute('aria-pressed'), 'true');
  const read = () => page.getByTestId('total-submitted').locator('.card-value').textContent();
  const frozen = await read();
  await page.waitForTimeout(600);
  assert.equal(await read(), frozen, 'a paused view holds still');
  await resume.click();
  await eventually(async () => (await read()) !== frozen, 10_000, 'updates to resume');
  assert.deepEqual(errors, []);
  await close();
});

test('an unknown route gets a 404 page with a 404 status', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const response = await page.goto(`${server.url}/no/such/page`);
  assert.equal(response.status(), 404);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Page not found');
  assert.deepEqual(errors.filter((e) => !e.includes('404')), []);
  await close();
});
