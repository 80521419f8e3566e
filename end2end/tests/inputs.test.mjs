// What an item carried, on its page: the demo's stages capture their inputs, so a failed
// item's page shows the document it failed on, next to the error, with the callback's
// token masked; the copy button copies it; and retrying from the page works, the page
// following the item back into the pipeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, retryOnPage, untilLive } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  server = await startServer(['--demo-rate', '200']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a failed item's page shows its input, masked, beside its error, and retries", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  // The store's refusals are retried with success (an empty document fails again at once).
  const failed = await eventually(async () => {
    const r = await (await fetch(`${server.url}/api/v1/tasks?status=failed&limit=100`)).json();
    return r.items.find((t) => t.error?.kind === 'StoreRejected');
  }, 30_000, 'a write the store refused');
  await page.goto(`${server.url}/tasks/${failed.id}`);
  await untilLive(page);

  const input = page.getByTestId('task-input').filter({ has: page.getByTestId('input-error') });
  assert.equal(await input.count(), 1, 'the input the item failed on');
  assert.equal(await input.getAttribute('data-stage'), 'store');
  assert.match(await input.getByTestId('input-error').textContent(), /StoreRejected/);
  const text = await input.locator('pre').textContent();
  const doc = JSON.parse(text);
  assert.match(doc.title, /\.txt §\d+$/);
  assert.match(doc.callback.url, /^https:\/\/hooks\.example\.com\//);
  assert.equal(doc.callback.token, '••••••', 'the token is masked');
  assert.doesNotMatch(text, /whk_/);

  await input.getByTestId('copy-input').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), text);

  assert.equal((await retryOnPage(page, server.url, failed.id)).outcome, 'ok');
  assert.deepEqual(errors, []);
  await close();
});

test("an item no stage sampled says so", async () => {
  const { page, errors, close } = await watchedPage(browser);
  const r = await (await fetch(`${server.url}/api/v1/tasks?status=completed&limit=200`)).json();
  // One in a hundred is sampled: find one that was not.
  let shown = false;
  for (const t of r.items) {
    const d = await (await fetch(`${server.url}/api/v1/tasks/${t.id}`)).json();
    if (d.detail.visits.every((v) => !v.input)) {
      await page.goto(`${server.url}/tasks/${t.id}`);
      await page.getByTestId('no-input').waitFor();
      assert.equal(await page.getByTestId('task-input').count(), 0);
      shown = true;
      break;
    }
  }
  assert.ok(shown, 'every completed item was sampled');
  assert.deepEqual(errors, []);
  await close();
});

// The runtime's sample: a multiplicative hash of the id (runtime/src/capture.rs).
const sampled = (id, fraction) =>
  Number(((BigInt(id) * 0x9E3779B97F4A7C15n) & ((1n << 64n) - 1n)) >> 11n) < fraction * 2 ** 53;

test("a sampled item's page shows what the pipeline made of it", async () => {
  const { page, errors, close } = await watchedPage(browser);
  // Settled: every stage it passed has reported its end. A worker sends its events in
  // batches (within 50 ms), so an item can finish at the store before the enrich worker's
  // completion (which carries the input it kept) has reached the tracker.
  const id = await eventually(async () => {
    const r = await (await fetch(`${server.url}/api/v1/tasks?status=completed&limit=1000`)).json();
    for (const t of r.items.filter((t) => t.stage === 3 && sampled(t.id, 0.01))) {
      const { detail } = await (await fetch(`${server.url}/api/v1/tasks/${t.id}`)).json();
      if (detail.visits.every((v) => v.outcome === 'completed')) return t.id;
    }
    return undefined;
  }, 30_000, 'a completed item in the 1% sample, settled');
  await page.goto(`${server.url}/tasks/${id}`);
  const output = page.getByTestId('task-output');
  await output.waitFor();
  assert.equal(await output.getAttribute('data-stage'), 'store');
  const [words, tokens] = JSON.parse(await output.locator('pre').textContent());
  assert.ok(words > 0 && tokens > 0, `${words} words, ${tokens} tokens`);
  // And its input at every stage it passed, the token masked.
  const inputs = page.getByTestId('task-input');
  assert.deepEqual(await inputs.evaluateAll((els) => els.map((e) => e.dataset.stage)), ['enrich', 'store']);
  assert.doesNotMatch(await inputs.last().locator('pre').textContent(), /whk_/);
  assert.deepEqual(errors, []);
  await close();
});
