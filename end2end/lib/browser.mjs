// Headless Debian Chromium through playwright-core, with the flags this machine needs
// (root needs --no-sandbox; the closed network needs background networking off).
import { chromium } from 'playwright-core';

// `extra`: more flags, for a bench that compares the browser's own settings.
export async function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extra,
    ],
  });
}

// A page that records console errors and uncaught exceptions.
export async function watchedPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { page, errors, close: () => context.close() };
}

// Polls `fn` until it returns a truthy value or `ms` passes.
export async function eventually(fn, ms = 10_000, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// Waits until the page's live badge (the first `role=status`, the header's) says "live":
// its stream is connected and a frame has arrived.
export async function untilLive(page, ms = 10_000, what = 'live') {
  const badge = page.getByRole('status').first();
  await eventually(async () => (await badge.textContent()) === 'live', ms, what);
}

// Waits until the app has hydrated the page (`<html data-hydrated>`). A page other than
// the overview hydrates once its own wasm module has arrived; a click, a check or a choice
// made before that lands on server-rendered HTML with no handlers and is lost.
export async function hydrated(page, ms = 15_000) {
  await page.waitForSelector('html[data-hydrated]', { timeout: ms });
}

// Clicks Retry on a failed task's open page (`base`: the server's URL) and waits for both
// ends of it: the control log's entry (the click reached the API; the entry says whether
// it was taken), then the page showing it without a reload: the task back in the pipeline
// or done, or (the demo fails some at random) failed again with the retry's steps added
// to its history. Answers the control log's entry.
export async function retryOnPage(page, base, id) {
  const steps = await page.locator('ol.history li').count();
  await page.getByTestId('task-retry').click();
  const entry = await eventually(async () => {
    const audit = await (await fetch(`${base}/api/v1/audit`)).json();
    return audit.find((a) => a.action === 'retry' && a.target === String(id));
  }, 10_000, 'the retry in the control log');
  if (entry.outcome !== 'ok') return entry;
  await eventually(async () => (await page.getByTestId('task-status').textContent()) !== 'failed'
    || (await page.locator('ol.history li').count()) > steps, 10_000, 'the retry shown on the page');
  return entry;
}
