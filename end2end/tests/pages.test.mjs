// The built-in pages against the demo: each loads live with no console errors, counts
// move, the task filters work, a task's page shows where it came from, and a page whose
// stream is cut reconnects and catches up from where it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { launch, watchedPage, eventually, untilLive } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  server = await startServer(['--refresh-ms', '100', '--demo-rate', '80']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const [path, heading] of [
  ['/', 'Overview'], ['/workers', 'Workers'], ['/tasks', 'Tasks'],
  ['/errors', 'Errors'], ['/streaming', 'Streaming'],
]) {
  test(`${path} loads, goes live, and logs no errors`, async () => {
    const { page, errors, close } = await watchedPage(browser);
    const response = await page.goto(server.url + path);
    assert.equal(response.status(), 200);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), heading);
    await untilLive(page, 10_000, `${path} to go live`);
    await page.waitForTimeout(500);
    assert.deepEqual(errors, []);
    await close();
  });
}

test('the workers page lists every worker of every stage', async () => {
  const { page, close } = await watchedPage(browser);
  await page.goto(`${server.url}/workers`);
  // ingest 2, parse 4, enrich 8, store 2
  assert.equal(await page.locator('.stage-workers tbody tr').count(), 16);
  await close();
});

test('the tasks list moves live and its filters work', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/tasks`);
  await untilLive(page);
  const all = () => page.getByTestId('tab-all').locator('.count').textContent();
  const before = await all();
  await eventually(async () => (await all()) !== before, 10_000, 'the item count to move');

  // Status: only failed (or cancelled) rows remain.
  await eventually(async () => Number((await page.getByTestId('tab-failed').locator('.count').textContent()).replace(/,/g, '')) > 0,
    20_000, 'a failure in the demo');
  await page.getByTestId('tab-failed').click();
  await eventually(async () => {
    const statuses = await page.getByTestId('task-row').evaluateAll((rows) => rows.map((r) => r.dataset.status));
    return statuses.length > 0 && statuses.every((s) => s === 'failed' || s === 'cancelled');
  }, 10_000, 'only failed rows');

  // Stage and text together: completed sections stored by the store stage.
  await page.getByTestId('tab-all').click();
  await page.getByTestId('stage-filter').selectOption({ label: 'store' });
  await eventually(async () => {
    const stages = await page.getByTestId('task-row').evaluateAll((rows) => rows.map((r) => r.children[2].textContent));
    return stages.length > 0 && stages.every((s) => s === 'store');
  }, 10_000, 'only rows at the store stage');
  await page.getByTestId('stage-filter').selectOption({ label: 'all' });
  await page.getByTestId('text-filter').fill('ModelTimeout');
  await eventually(async () => {
    const kinds = await page.getByTestId('task-row').evaluateAll((rows) => rows.map((r) => r.children[5].textContent));
    return kinds.every((k) => k === 'ModelTimeout');
  }, 10_000, 'only rows with that error');
  assert.deepEqual(errors, []);
  await close();
});

test('the task list draws only what is visible', async () => {
  const { page, close } = await watchedPage(browser);
  await page.goto(`${server.url}/tasks`);
  await untilLive(page);
  await eventually(async () => Number((await page.getByTestId('tab-all').locator('.count').textContent()).replace(/,/g, '')) > 200,
    20_000, 'more than 200 items');
  const rows = await page.getByTestId('task-row').count();
  assert.ok(rows > 0 && rows <= 40, `${rows} rows in the DOM`);
  // Scrolling far down shows later rows, still few of them.
  const firstBefore = await page.getByTestId('task-row').first().textContent();
  await page.getByTestId('task-list').evaluate((el) => { el.scrollTop = 3200; });
  await eventually(async () => (await page.getByTestId('task-row').first().textContent()) !== firstBefore, 5_000, 'the slice to move');
  assert.ok((await page.getByTestId('task-row').count()) <= 40);
  await close();
});

test("a task's page shows its provenance, with links", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/tasks`);
  await untilLive(page);
  // Sections at the store stage were split from a document: they have a parent.
  await page.getByTestId('stage-filter').selectOption({ label: 'store' });
  // The rows of the list before the filter stay until the filtered window arrives.
  const stagesShown = () => page.getByTestId('task-row').evaluateAll((rows) => rows.map((r) => r.children[2].textContent));
  await eventually(async () => {
    const shown = await stagesShown();
    return shown.length > 0 && shown.every((s) => s === 'store');
  }, 10_000, 'rows at store, and only those');
  // Rows move as the list updates: take whichever row the click lands on, by the URL.
  await page.getByTestId('task-row').first().click();
  const id = await eventually(async () => page.url().match(/\/tasks\/(\d+)$/)?.[1], 10_000, 'the task page');
  await eventually(async () => (await page.getByTestId('task-title').textContent()) === `Task #${id}`, 10_000, 'its title');
  const links = page.getByTestId('provenance').locator('a');
  assert.ok((await links.count()) >= 2, 'the item and the document it came from');
  const parent = (await links.nth(1).textContent()).replace('#', '');
  assert.notEqual(parent, id);
  await links.nth(1).click();
  await eventually(async () => page.url().endsWith(`/tasks/${parent}`), 10_000, 'the parent URL');
  await eventually(async () => (await page.getByTestId('task-title').textContent()) === `Task #${parent}`, 10_000, 'the parent page');
  assert.match(await page.getByTestId('annotations').textContent(), /input/);
  assert.deepEqual(errors, []);
  await close();
});

test('an unknown task gets a 404', async () => {
  const { page, close } = await watchedPage(browser);
  const response = await page.goto(`${server.url}/tasks/99999999`);
  assert.equal(response.status(), 404);
  assert.match(await page.getByTestId('task-missing').textContent(), /not retained/);
  await close();
});

test('a cut stream reconnects with Last-Event-ID and catches up', async () => {
  const proxy = await startProxy(server.url);
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(proxy.url);
  await untilLive(page);
  await page.waitForTimeout(500);
  proxy.cut();
  await eventually(async () => (await page.getByRole('status').textContent()) === 'reconnecting', 5_000, 'the page to notice');
  await untilLive(page, 15_000, 'the page to reconnect');
  const resumed = proxy.requests.filter((r) => r.path.split('?')[0] === '/api/events' && r.lastEventId);
  assert.ok(resumed.length >= 1, 'the browser resumed with Last-Event-ID');
  await eventually(async () => resumed[0].firstEvent !== null, 5_000, 'a frame after resuming');
  assert.equal(resumed[0].firstEvent, 'delta', 'it got the missed deltas, not a fresh full frame');
  // And it keeps up: the page's count matches the server's a moment later.
  const read = () => page.getByTestId('total-submitted').locator('.card-value').textContent();
  const before = await read();
  await eventually(async () => (await read()) !== before, 10_000, 'counts to move after the reconnect');
  assert.deepEqual(errors.filter((e) => !/ERR_|net::/.test(e)), []);
  await close();
  await proxy.stop();
});

test('the first load fetches only the main wasm module; a page\'s module comes when it is first visited', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const wasm = [];
  page.on('request', (r) => { if (r.url().endsWith('.wasm')) wasm.push(new URL(r.url()).pathname.split('/').pop()); });
  await page.goto(`${server.url}/`);
  await page.waitForSelector('html[data-hydrated]', { timeout: 10_000 });
  await untilLive(page, 10_000, 'the overview to go live');
  await page.waitForTimeout(500);
  assert.deepEqual(wasm, ['flowdeck.wasm'], 'the overview needs no page module');
  // Client-side navigation to the workers page loads its module, then renders it live.
  await page.getByRole('link', { name: 'Workers', exact: true }).click();
  await eventually(async () => (await page.getByRole('heading', { level: 1 }).textContent()) === 'Workers', 10_000, 'the workers page');
  assert.ok(wasm.some((n) => n.startsWith('split___workers_route')), `the workers module was fetched: ${wasm}`);
  await eventually(async () => (await page.locator('.stage-workers tbody tr').count()) === 16, 10_000, 'the workers listed');
  assert.deepEqual(errors, []);
  await close();
});
