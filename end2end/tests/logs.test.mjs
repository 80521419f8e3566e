// The Logs page against the demo's real logs: records arrive while following, the level,
// source glob and text filters narrow them, and pausing holds the list still.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  // A fast demo, so that warnings and errors come every second.
  server = await startServer(['--refresh-ms', '250', '--demo-rate', '300']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const rows = (page) => page.getByTestId('log-row');
const firstSeq = async (page) => (await rows(page).first().textContent()) ?? '';

test('logs arrive live and filter by level, source and text', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/logs`);
  await hydrated(page);
  await eventually(async () => (await rows(page).count()) > 3, 15_000, 'log rows');

  await page.getByTestId('log-level').selectOption('warn');
  await eventually(async () => {
    const levels = await rows(page).evaluateAll((els) => els.map((e) => e.dataset.level));
    return levels.length > 0 && levels.every((l) => l === 'warn' || l === 'error');
  }, 10_000, 'only warnings and errors');

  await page.getByTestId('log-source').fill('store-*');
  await eventually(async () => {
    const sources = await rows(page).locator('.source').allTextContents();
    return sources.length > 0 && sources.every((s) => s.startsWith('store-'));
  }, 15_000, 'only store-* sources');
  await page.getByTestId('log-source').fill('');

  await page.getByTestId('log-text').fill('timed out');
  await eventually(async () => {
    const messages = await rows(page).locator('.message').allTextContents();
    return messages.length > 0 && messages.every((m) => m.includes('timed out'));
  }, 10_000, 'only timeouts');

  // Paused, the list holds still while the demo keeps logging; following, it moves again.
  await page.getByTestId('log-text').fill('');
  await eventually(async () => (await rows(page).count()) > 3, 10_000, 'rows again');
  await page.getByTestId('log-follow').click();
  await page.waitForTimeout(300);
  const held = await firstSeq(page);
  await page.waitForTimeout(2500);
  assert.equal(await firstSeq(page), held, 'paused list changed');
  await page.getByTestId('log-follow').click();
  await eventually(async () => (await firstSeq(page)) !== held, 10_000, 'the list moving again');

  // A bad glob is named, not a blank page.
  await page.getByTestId('log-source').fill('[x');
  await eventually(async () => (await page.getByTestId('log-error').count()) === 1, 10_000, 'the glob error');
  assert.match(await page.getByTestId('log-error').textContent(), /glob/);
  assert.deepEqual(errors, []);
  await close();
});
