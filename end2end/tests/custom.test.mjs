// Custom widgets and restarting a worker (flowdeck/examples/widgets.rs): a template
// widget's hostile markup never reaches the DOM, its content updates in place, a widget
// whose closure panics shows its error while the page's other widgets update, and a
// worker hung on an item is restarted from the workers page: its item is retried and
// completes, and the audit log names who did it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const skip = !process.env.WIDGETS_BIN;
let server;
let browser;

before(async () => {
  if (skip) return;
  server = await startServer([], { bin: process.env.WIDGETS_BIN, name: 'widgets' });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (server) {
    process.kill(server.pid, 'SIGKILL');
    rmSync(server.dir, { recursive: true, force: true });
    rmSync(server.data, { recursive: true, force: true });
  }
});

const api = async (path) => (await fetch(`${server.url}${path}`)).json();

test('a template widget shows no script, handler, javascript: link or escaping style, and updates in place', { skip }, async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/pages/custom`);
  await hydrated(page);
  const widget = page.locator('.widget[data-kind="custom"]', { hasText: 'Tenants' });
  const html = widget.getByTestId('custom-html');
  await html.waitFor();
  const inner = await html.innerHTML();
  for (const gone of ['<script', 'onerror', 'javascript:', 'position', 'pwned']) {
    assert.ok(!inner.includes(gone), `${gone} in ${inner}`);
  }
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  // The data's markup is text.
  assert.equal(await html.locator('.tpl-name').textContent(), '<img src=x onerror=alert(1)>');
  assert.equal(await html.locator('.tpl-link').getAttribute('href'), null);
  // The would-be cover stays inside the widget's box.
  const box = await widget.boundingBox();
  const cover = await html.locator('.tpl-cover').boundingBox();
  assert.ok(cover.x >= box.x && cover.y >= box.y, `cover at ${JSON.stringify(cover)}, widget at ${JSON.stringify(box)}`);
  assert.ok(cover.x + cover.width <= box.x + box.width + 1, 'cover inside the widget');
  // Counts come from the server every second, into the same page.
  const cell = html.locator('.tpl-completed');
  const first = Number(await cell.textContent());
  await page.evaluate(() => { window.sameDocument = true; });
  await eventually(async () => Number(await cell.textContent()) > first, 15_000, 'the template widget to update');
  assert.equal(await page.evaluate(() => window.sameDocument), true);
  // The declarative view is drawn by the site.
  const view = page.locator('.widget[data-kind="custom"]', { hasText: 'Backlog' }).getByTestId('custom-view');
  assert.match(await view.textContent(), /Queued/);
  assert.equal(await view.locator('.block-text strong').textContent(), 'queue');
  assert.deepEqual(errors, []);
  await close();
});

test("a panicking widget shows its error while the page's other widgets update", { skip }, async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/pages/custom`);
  await hydrated(page);
  const broken = page.locator('.widget[data-kind="custom"]', { hasText: 'Broken' });
  await eventually(async () => (await broken.getByTestId('custom-error').textContent())
    === 'the widget panicked: the tenant service is down', 15_000, 'the panic in its widget');
  const value = page.getByTestId('widget-metric').getByTestId('metric-value');
  const before = await value.textContent();
  await eventually(async () => (await value.textContent()) !== before, 15_000, 'the metric to move');
  assert.deepEqual(errors, []);
  await close();
});

test('a hung worker is restarted from the workers page: its item is retried and the audit log names who', { skip }, async () => {
  // The stalled-worker warning names the worker and its item.
  const warning = await eventually(async () => {
    const w = await api('/api/v1/warnings');
    return w.current.find((x) => x.rule === 'stalled_worker' && x.stage === 'hang') ?? null;
  }, 30_000, 'the stalled-worker warning');
  const item = warning.items[0];
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await hydrated(page);
  await page.getByTestId('restart-link').first().click();
  await page.waitForURL(/\/workers#restart$/);
  await hydrated(page);
  const button = page.getByTestId(`restart-hang-${warning.worker}`);
  await button.click();
  await eventually(async () => (await api(`/api/v1/tasks/${item}`)).detail?.status === 'completed', 20_000, 'the restarted item to complete');
  const task = await api(`/api/v1/tasks/${item}`);
  assert.match(JSON.stringify(task), /restarted by anonymous/);
  const audit = await api('/api/v1/audit');
  const entry = audit.find((e) => e.action === 'restart');
  assert.equal(entry.outcome, 'ok');
  assert.equal(entry.user, 'anonymous');
  assert.equal(entry.target, `hang worker ${warning.worker}`);
  // The page's audit log shows it too.
  await eventually(async () => (await page.getByTestId('audit').textContent()).includes('restart'), 10_000, 'the audit log on the page');
  assert.deepEqual(errors, []);
  await close();
});
