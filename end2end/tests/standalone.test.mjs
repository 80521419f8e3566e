// A user's own crate built on flowdeck (examples/standalone, outside the workspace, built
// with an empty target directory): its binary, alone in a directory, serves the dashboard,
// and the page it defines in Rust hydrates and updates live.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, untilLive } from '../lib/browser.mjs';

const bin = process.env.STANDALONE_BIN;
let server;
let browser;
before(async () => {
  if (!bin) throw new Error('STANDALONE_BIN must name the examples/standalone binary');
  server = await startServer([], { bin, name: 'standalone' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the user's page is in the navigation, hydrates and counts live", async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(server.url);
  await page.getByRole('link', { name: 'Orders' }).click();
  await page.waitForURL(/\/pages\/orders$/);
  await untilLive(page, 15_000, 'live');
  const value = page.getByTestId('widget-metric').getByTestId('metric-value');
  const first = await value.textContent();
  await eventually(async () => (await value.textContent()) !== first, 15_000, 'the metric to move');
  // The table of stages is fed by the stream: the user's stage names are in it.
  const table = page.getByTestId('widget-table');
  await eventually(async () => (await table.textContent()).includes('ship'), 10_000, 'the stages table');
  // Its own widget, rendered by the prebuilt site with no wasm built for it, counts too.
  const done = page.locator('.widget[data-kind="custom"]').getByTestId('custom-html').locator('b.done');
  const shipped = Number(await done.textContent());
  await eventually(async () => Number(await done.textContent()) > shipped, 15_000, 'its own widget to count');
  assert.deepEqual(errors, []);
  await close();
});
