// Control from the page: an admin (the default, with auth off) pauses a stage, sees it
// paused, resumes it and adds a worker; a readonly dashboard shows no buttons and its API
// answers 403.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, retryOnPage, untilLive } from '../lib/browser.mjs';

let server;
let readonly;
let browser;
before(async () => {
  server = await startServer(['--refresh-ms', '100']);
  readonly = await startServer(['--refresh-ms', '100', '--readonly']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await readonly?.stop();
});

test('a stage paused from the page shows as paused, then resumes', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/workers`);
  await untilLive(page);
  const stage = page.locator('.stage-workers[data-stage="enrich"]');
  await page.getByTestId('pause-enrich').click();
  await eventually(async () => (await stage.locator('h2 .tag').count()) === 1, 5_000, 'the paused tag');
  assert.equal(await page.getByTestId('pause-enrich').textContent(), 'Resume');
  await eventually(async () => {
    const states = await stage.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.state));
    return states.every((s) => s === 'paused');
  }, 10_000, 'every enrich worker paused');
  await page.getByTestId('pause-enrich').click();
  await eventually(async () => (await stage.locator('h2 .tag').count()) === 0, 5_000, 'the tag gone');

  const before = await stage.locator('tbody tr').count();
  await page.getByTestId('scale-up-enrich').click();
  await eventually(async () => (await stage.locator('tbody tr').count()) === before + 1, 5_000, 'one more worker');

  const audit = await (await fetch(`${server.url}/api/v1/audit`)).json();
  assert.deepEqual(audit.map((a) => a.action), ['pause', 'resume', 'scale']);
  // The page shows the same log, newest first.
  await eventually(async () => (await page.getByTestId('audit').locator('tbody tr').count()) === 3, 10_000, 'three audit rows');
  const actions = await page.getByTestId('audit').locator('tbody tr td:nth-child(3)').allTextContents();
  assert.deepEqual(actions, ['scale', 'resume', 'pause']);
  assert.deepEqual(errors, []);
  await close();
});

test('a readonly dashboard shows no controls and refuses them', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${readonly.url}/workers`);
  await untilLive(page);
  assert.equal(await page.locator('.stage-workers').count(), 4);
  assert.equal(await page.getByTestId('pause-enrich').count(), 0);
  const res = await fetch(`${readonly.url}/api/v1/stages/enrich/pause`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
  });
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error, 'forbidden');
  assert.deepEqual(errors, []);
  await close();
});

test('a failed task is retried from its page', async () => {
  const { page, errors, close } = await watchedPage(browser);
  // Not an empty document: that fails again at once, by design, and the page would
  // show it failed again before the test could see it leave.
  const failed = await eventually(async () => {
    const r = await (await fetch(`${server.url}/api/v1/tasks?status=failed&limit=100`)).json();
    return r.items.find((t) => t.error?.kind !== 'Empty')?.id;
  }, 20_000, 'a failed task that a retry can fix');
  await page.goto(`${server.url}/tasks/${failed}`);
  await untilLive(page);
  assert.equal(await page.getByTestId('task-status').textContent(), 'failed');
  const entry = await retryOnPage(page, server.url, failed);
  assert.equal(entry.outcome, 'ok');
  const audit = await (await fetch(`${server.url}/api/v1/audit`)).json();
  assert.deepEqual(audit.at(-1), entry, 'the last action');
  assert.deepEqual(errors, []);
  await close();
});

test('a task page follows its task as it moves, without a reload', async () => {
  const { page, errors, close } = await watchedPage(browser);
  const store = (action) => fetch(`${server.url}/api/v1/stages/store/${action}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
  });
  assert.equal((await store('pause')).status, 200);
  let paused = true;
  try {
    // Every store worker paused: each has finished its item and sent its events, so what
    // the tracker shows queued at the store now stays there until the stage resumes.
    await eventually(async () => {
      const { snapshot } = await (await fetch(`${server.url}/api/view`)).json();
      return snapshot.stages.find((st) => st.name === 'store').workers.every((w) => w.state === 'paused');
    }, 20_000, 'every store worker paused');
    const held = await eventually(async () => {
      const r = await (await fetch(`${server.url}/api/v1/tasks?status=queued&stage=store&limit=10`)).json();
      return r.items[0]?.id;
    }, 20_000, 'a task queued at the paused store');
    await page.goto(`${server.url}/tasks/${held}`);
    await untilLive(page);
    assert.equal(await page.getByTestId('task-status').textContent(), 'queued');
    // Still queued a few frames later: the page reads it again and it has not moved.
    await page.waitForTimeout(1_000);
    assert.equal(await page.getByTestId('task-status').textContent(), 'queued');
    assert.equal((await store('resume')).status, 200);
    paused = false;
    await eventually(async () => ['completed', 'failed'].includes(await page.getByTestId('task-status').textContent()),
      10_000, 'the task finished on the open page');
    assert.deepEqual(errors, []);
  } finally {
    if (paused) await store('resume');
    await close();
  }
});

test('draining from the page asks first, then drains the pipeline', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/workers`);
  await untilLive(page);
  // Declined: nothing happens.
  page.once('dialog', (d) => d.dismiss());
  await page.getByTestId('pipeline-drain').click();
  await page.waitForTimeout(500);
  assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
  page.once('dialog', (d) => d.accept());
  await page.getByTestId('pipeline-drain').click();
  await eventually(async () => (await fetch(`${server.url}/readyz`)).status === 503, 10_000, 'not ready once draining');
  const audit = await (await fetch(`${server.url}/api/v1/audit`)).json();
  assert.equal(audit.filter((a) => a.action === 'drain').length, 1);
  assert.deepEqual(errors, []);
  await close();
});
