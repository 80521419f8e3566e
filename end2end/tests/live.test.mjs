// The live path end to end: server-rendered first paint, hydration, one EventSource,
// values changing without a reload, a working click handler, no console errors, a real 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually } from '../lib/browser.mjs';

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
  await eventually(async () => (await page.getByRole('status').textContent()) === 'live', 10_000, 'the stream to go live');
  const read = () => page.getByTestId('total-submitted').locator('.card-value').textContent();
  const before = await read();
  await eventually(async () => (await read()) !== before, 10_000, 'the submitted count to change');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
  assert.equal(streams.length, 1, 'one EventSource per tab');
  assert.equal(new URL(streams[0]).searchParams.get('rows'), 'none', 'the overview shows no task rows');
  assert.deepEqual(errors, []);
  await close();
});

test('the task list asks the stream for the rows the other pages go without', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const streams = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/events') streams.push(new URL(r.url())); });
  await page.goto(server.url);
  await eventually(async () => (await page.getByRole('status').textContent()) === 'live', 10_000, 'live');
  assert.deepEqual(streams.map((u) => u.searchParams.get('rows')), ['none']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tasks', exact: true }).click();
  // The stream is opened again with rows, and the list fills from its full frame.
  await eventually(async () => streams.length === 2, 10_000, 'a stream with rows');
  assert.equal(streams[1].searchParams.get('rows'), 'chunked', 'the rows of a full frame come in chunks after it');
  await eventually(async () => (await page.locator('[data-testid="task-row"]').count()) > 0, 10_000, 'rows listed');
  // Back on the overview, the rows stay: no third stream.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview', exact: true }).click();
  await page.waitForTimeout(500);
  assert.equal(streams.length, 2);
  assert.deepEqual(errors, []);
  await close();
});

test('the pause button works and freezes the view', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(server.url);
  await eventually(async () => (await page.getByRole('status').textContent()) === 'live', 10_000, 'live');
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
