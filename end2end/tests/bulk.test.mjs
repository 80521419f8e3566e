// Bulk actions (BULK_BIN: flowdeck/examples/bulk.rs). 200 orders: `fetch` times out for
// good on 20 of them; `enrich` times out on 50 the first time it sees them, and refuses
// 40 as bad input. On the Tasks page, the filters (exclusions included) are kept in the
// address, so a reload shows the same list; "Retry all failed that match…" asks the server
// for the exact count, confirms it, and retries exactly those, which complete. The Errors
// page's groups open that confirmation for their own failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { example } from '../lib/example.mjs';
import { watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const ex = example('BULK_BIN', 'bulk');
const { skip } = ex;

const api = async (path) => (await fetch(`${ex.server.url}${path}`)).json();
const count = async (query) => (await api(`/api/v1/tasks?limit=1000&${query}`)).items.length;
const finished = async () => {
  const s = await api('/api/v1/summary');
  return s.tasks.completed + s.tasks.failed;
};

test('the timeouts of one stage, filtered on the Tasks page, are retried all at once and complete', { skip }, async () => {
  await eventually(async () => (await finished()) === 200, 60_000, 'the 200 orders finished');
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/tasks`);
  await hydrated(page);
  const matchCount = page.getByTestId('match-count');
  const shows = (n) => eventually(async () => (await matchCount.textContent()) === `${n} items`, 20_000, `${n} items listed`);

  // Failed, anywhere, but not timeouts: the bad inputs only.
  await page.getByTestId('tab-failed').click();
  await page.getByTestId('text-filter').fill('-kind:timeout');
  await shows(40);
  // A key the filter does not know is named, not searched for.
  await page.getByTestId('text-filter').fill('knd:timeout');
  assert.match(await page.getByTestId('filter-error').textContent(), /unknown key "knd"/);
  await shows(0);

  // The timeouts of enrich, kept in the address: a reload lists the same 50.
  await page.getByTestId('stage-filter').selectOption({ label: 'enrich' });
  await page.getByTestId('text-filter').fill('kind:timeout');
  await shows(50);
  await eventually(async () => new URL(page.url()).search === '?status=failed&stage=enrich&q=kind%3Atimeout',
    5_000, `the filters in the address (${page.url()})`);
  await page.reload();
  await hydrated(page);
  await shows(50);
  assert.equal(await page.getByTestId('text-filter').inputValue(), 'kind:timeout');

  // The confirmation names the exact count; the answer says what was done.
  await page.getByTestId('bulk-retry-start').click();
  const confirm = page.getByTestId('bulk-confirm');
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /^Retry 50 failed items that match \(stage enrich, “kind:timeout”\)\?/);
  await page.getByTestId('bulk-yes').click();
  const done = page.getByTestId('bulk-done');
  await done.waitFor();
  assert.equal(await done.getAttribute('data-acted'), '50');
  assert.equal(await done.getAttribute('data-skipped'), '0');

  // They complete; the timeouts of fetch and the bad inputs stay failed.
  await eventually(async () => (await count('status=completed&stage=enrich')) === 140, 30_000, 'the 50 retried completed');
  assert.equal(await count('status=failed&q=kind:timeout'), 20);
  assert.equal(await count('status=failed&q=stage:fetch'), 20);
  assert.equal(await count('status=failed&q=kind:bad_input'), 40);
  await shows(0);

  // One decision, one audit entry.
  const audit = (await api('/api/v1/audit')).filter((e) => e.action === 'retry all');
  assert.deepEqual(audit.map((e) => [e.target, e.outcome]),
    [['stage=enrich q="kind:timeout"', 'ok: 50 matched, 50 acted, 0 skipped']]);
  assert.deepEqual(errors, []);
  await close();
});

test('a group on the Errors page opens the retry of its failures, which can be declined', { skip }, async () => {
  await eventually(async () => (await finished()) === 200, 60_000, 'the 200 orders finished');
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/errors`);
  await hydrated(page);
  const row = page.getByTestId('errors-by-kind').locator('tr', { hasText: 'bad_input' });
  await row.getByTestId('retry-group').click();
  const confirm = page.getByTestId('bulk-confirm');
  await confirm.waitFor();
  assert.match(await confirm.textContent(), /^Retry 40 failed items that match \(“kind:bad_input”\)\?/);
  assert.equal(new URL(page.url()).pathname, '/tasks');
  await page.getByTestId('bulk-no').click();
  await page.getByTestId('bulk-retry-start').waitFor();
  // Declined: nothing moved.
  assert.equal(await count('status=failed&q=kind:bad_input'), 40);
  assert.deepEqual(errors, []);
  await close();
});
