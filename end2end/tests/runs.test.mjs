// A finished run browsed after a restart: the demo runs a while on a run store, stops with
// SIGTERM (it drains, so the run finishes), and a new server on the same store lists it;
// its overview, its tasks (filtered by the server, with exact counts), a task with its
// provenance, its errors and its metrics are pages like the live ones, read from the store.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated } from '../lib/browser.mjs';

let server;
let browser;
let run;
let failed;
before(async () => {
  const first = await startServer(['--demo-rate', '150', '--drain-timeout-secs', '30']);
  await eventually(async () => {
    const e = await (await fetch(`${first.url}/api/v1/errors`)).json();
    return e.total >= 3;
  }, 60_000, 'a few failures');
  run = (await (await fetch(`${first.url}/api/v1/store`)).json()).run;
  await first.stop({ keepData: true });
  server = await startServer([], { data: first.data });
  const stored = await (await fetch(`${server.url}/api/v1/runs/${run}/errors`)).json();
  failed = stored.total;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the runs page lists the finished run with its counts', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/runs`);
  const row = page.getByTestId('run-row').filter({ hasText: `#${run}` });
  await row.waitFor();
  assert.equal(await row.getAttribute('data-state'), 'finished');
  assert.match(await page.getByTestId('store-status').textContent(), /items written/);
  await row.getByRole('link').click();
  await page.waitForURL(new RegExp(`/runs/${run}$`));
  assert.equal(await page.getByTestId('run-state').textContent(), 'finished');
  assert.equal(await page.getByTestId('pipeline-name').textContent(), 'document-enrichment');
  const failedCard = Number((await page.getByTestId('total-failed').locator('.card-value').textContent()).replace(/,/g, ''));
  assert.ok(failedCard >= failed, `${failedCard} failed on the card, ${failed} kept`);
  assert.ok(await page.locator('.pipeline-graph').count() > 0, 'the graph is drawn');
  assert.deepEqual(errors, []);
  await close();
});

test("a stored run's tasks are filtered and counted by the server", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/runs/${run}/tasks`);
  await hydrated(page);
  const count = async (tab) => Number((await page.getByTestId(`tab-${tab}`).locator('.count').textContent()).replace(/,/g, ''));
  await eventually(async () => (await count('all')) > 0, 10_000, 'the counts');
  assert.equal(await count('failed'), failed, 'exact, as the store counts them');
  await page.getByTestId('tab-failed').click();
  await eventually(async () => {
    const statuses = await page.getByTestId('task-row').evaluateAll((rows) => rows.map((r) => r.dataset.status));
    return statuses.length > 0 && statuses.every((s) => s === 'failed');
  }, 10_000, 'only failed rows');
  // Search: an error kind the demo produces.
  const kind = (await page.getByTestId('task-row').first().locator('code').textContent()).trim();
  await page.getByTestId('text-filter').fill(kind);
  await page.getByTestId('text-filter').press('Enter');
  // The list before the search also says "items match", and its rows can all be of that
  // kind already: wait for rows and count to agree (one CI run read 7 rows of the list
  // before and the count of the list after).
  const codes = await eventually(async () => {
    const c = await page.getByTestId('task-row').locator('code').allTextContents();
    const said = (await page.getByTestId('match-count').textContent()).match(/^([\d,]+) items match/);
    const n = said ? Number(said[1].replace(/,/g, '')) : -1;
    return c.length > 0 && c.every((k) => k === kind) && (n === c.length || (c.length === 100 && n > 100)) && c;
  }, 10_000, `only ${kind} rows, as many as the count says`);
  // As many as the server counts for that kind among the failed.
  const byApi = await (await fetch(`${server.url}/api/v1/runs/${run}/tasks?status=failed&q=${encodeURIComponent(kind)}&limit=1`)).json();
  assert.equal(codes.length, Math.min(byApi.total, 100));
  // A task's page, with where it came from.
  await page.getByTestId('task-row').first().click();
  await page.waitForURL(new RegExp(`/runs/${run}/tasks/\\d+$`));
  assert.equal(await page.getByTestId('task-status').textContent(), 'failed');
  assert.ok((await page.getByTestId('task-error').textContent()).includes(kind));
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0, 'no controls on history');
  assert.deepEqual(errors, []);
  await close();
});

test("a stored run's errors page counts by kind and links into the run", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/runs/${run}/errors`);
  assert.match(await page.getByTestId('errors-total').textContent(), new RegExp(`^${failed} items failed`));
  const link = page.getByTestId('failures').getByRole('link').first();
  assert.match(await link.getAttribute('href'), new RegExp(`^/runs/${run}/tasks/\\d+$`));
  assert.deepEqual(errors, []);
  await close();
});

test("a stored run's metrics are charted from the store's minute rollups", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/runs/${run}/metrics`);
  assert.equal(await page.getByTestId('metrics-range').count(), 0, 'a stored run has its own span');
  const titles = () => page.locator('.chart-legend li').evaluateAll((lis) => lis.map((li) => `${li.title} ${li.textContent}`));
  // Items by outcome, as the run ended: the completed line has a value.
  await eventually(async () => (await titles()).some((t) => /^flowdeck_items_total\{.*outcome=completed.*\}.*\(rate\)\s*\S+/.test(t)), 10_000, 'the items charted');
  // The user's own series was kept too, and can be chosen.
  await page.locator('input[data-metric="demo_tokens_total"]').check();
  await eventually(async () => (await titles()).some((t) => t.startsWith('demo_tokens_total')), 10_000, 'the chosen series charted');
  assert.deepEqual(errors, []);
  await close();
});

test('a finished run replays: its overview shows the counts and bottleneck of a chosen moment', async () => {
  const timeline = await (await fetch(`${server.url}/api/v1/runs/${run}/timeline`)).json();
  assert.ok(timeline.points.length >= 2, `a snapshot at the start and one at the end: ${JSON.stringify(timeline)}`);
  const last = timeline.points.length - 1;
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/runs/${run}`);
  await hydrated(page);
  const slider = page.getByTestId('replay-slider');
  assert.equal(await slider.getAttribute('max'), String(last));
  assert.equal(await slider.inputValue(), String(last), 'the run\'s end at first');
  assert.match(await page.getByTestId('replay-at').textContent(), /^at the end/);
  const card = async (id) => Number((await page.getByTestId(`total-${id}`).locator('.card-value').textContent()).replace(/,/g, ''));
  const bottleneck = async () => (await page.locator('tr.bottleneck').getAttribute('data-stage', { timeout: 1000 }).catch(() => null));

  // Each kept moment: the URL says it, the cards and the bottleneck are the store's then.
  for (const i of [0, Math.floor(last / 2)]) {
    const point = timeline.points[i];
    await slider.fill(String(i));
    await page.waitForURL(new RegExp(`/runs/${run}\\?at=${point.at_ms}$`));
    const then = await (await fetch(`${server.url}/api/v1/runs/${run}/at?ms=${point.at_ms}`)).json();
    await eventually(async () => (await card('completed')) === point.totals.completed
      && (await card('failed')) === point.totals.failed, 10_000, `the counts at ${point.at_ms} ms`);
    assert.equal(await bottleneck(), then.bottleneck, `the bottleneck at ${point.at_ms} ms`);
    assert.equal(await slider.inputValue(), String(i));
    assert.match(await page.getByTestId('replay-at').textContent(), /^at \S+ of /);
  }
  // Back to the end.
  await slider.fill(String(last));
  await page.waitForURL(new RegExp(`/runs/${run}$`));
  await eventually(async () => (await card('completed')) === timeline.points[last].totals.completed, 10_000, 'the end\'s counts');
  assert.deepEqual(errors, []);
  await close();
});

test('replay lists the tasks as they were at a moment, with the ones still in progress then', async () => {
  const timeline = await (await fetch(`${server.url}/api/v1/runs/${run}/timeline`)).json();
  const last = timeline.points.length - 1;
  const api = async (at, query = '') =>
    (await (await fetch(`${server.url}/api/v1/runs/${run}/tasks?at=${at}&limit=1${query}`)).json()).total;
  const { page, errors, close } = await watchedPage(browser);
  const count = async (tab) => Number((await page.getByTestId(`tab-${tab}`).locator('.count').textContent()).replace(/,/g, ''));

  // From the overview's slider to that moment's task list.
  const point = timeline.points[Math.floor(last / 2)];
  await page.goto(`${server.url}/runs/${run}?at=${point.at_ms}`);
  await hydrated(page);
  await page.getByTestId('replay-tasks').click();
  await page.waitForURL(new RegExp(`/runs/${run}/tasks\\?at=${point.at_ms}$`));
  await page.getByTestId('tasks-at').waitFor();
  await eventually(async () => (await count('all')) === await api(point.at_ms), 10_000, 'the items then');

  // A moment when some items were still going and more were still to come: the tabs count
  // them as the API does, and the "In progress" tab lists them with the status they had
  // then. Picked from what the run kept, not from the clock: the run ingests until a few
  // failures, then drains, and on a slow machine the drain outlasts the ingest, so the
  // middle of the run's time fell where no new item arrived (and its snapshots, 5 s
  // apart, may hold no moment of the ingest at all). The item in the middle of the ids was
  // made with half the items still to come, and it was itself in progress just after.
  const kept = await api(timeline.points[last].at_ms);
  const middle = (await (await fetch(`${server.url}/api/v1/runs/${run}/tasks?sort=oldest&limit=1&offset=${Math.floor(kept / 2)}`)).json()).items[0];
  const made = (await (await fetch(`${server.url}/api/v1/runs/${run}/tasks/${middle.id}`)).json()).detail.created_us;
  const mid = Math.ceil(made / 1000);
  await page.goto(`${server.url}/runs/${run}/tasks?at=${mid}`);
  await hydrated(page);
  const going = await api(mid, '&status=running');
  assert.ok(going > 0, `the demo had items in flight at ${mid} ms`);
  assert.equal(await count('all'), await api(mid));
  assert.equal(await count('completed'), await api(mid, '&status=completed'));
  assert.equal(await count('failed'), await api(mid, '&status=failed'));
  assert.equal(await count('in-progress'), going);
  assert.ok(await count('all') < await api(timeline.points[last].at_ms), 'fewer items then than at the end');
  await page.getByTestId('tab-in-progress').click();
  // The list shows the last read (All's) until the tab's own arrives: with 100 or more in
  // progress, All's rows are as many, so it is the match line that tells the two apart
  // (the same only if nothing had finished by then, when All's rows are in progress too).
  const rows = page.getByTestId('task-row');
  const shown = Math.min(going, 100);
  const matched = `${going.toLocaleString('en-US')} items match · 1–${shown}`;
  await eventually(async () => (await page.getByTestId('match-count').textContent()) === matched, 10_000, 'the items in progress then');
  assert.equal(await rows.count(), shown);
  for (const status of await rows.evaluateAll((els) => els.map((e) => e.dataset.status))) {
    assert.ok(['queued', 'running', 'retrying'].includes(status), status);
  }
  assert.deepEqual(errors, []);
  await close();
});
