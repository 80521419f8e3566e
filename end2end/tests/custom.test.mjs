// Custom widgets and restarting a worker (flowdeck/examples/widgets.rs): a template
// widget's hostile markup never reaches the DOM, its content updates in place, a widget
// whose closure panics shows its error while the page's other widgets update, and a
// worker hung on an item is restarted from the workers page: its item is retried and
// completes, and the audit log names who did it. Then `flowdeck top` in tmux (a real
// terminal) shows the page's view and sends the template widget to a browser, and
// restarts the next hung worker with a key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { example } from '../lib/example.mjs';
import { watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const ex = example('WIDGETS_BIN', 'widgets');
const { skip } = ex;

const api = async (path) => (await fetch(`${ex.server.url}${path}`)).json();

test('a template widget shows no script, handler, javascript: link or escaping style, and updates in place', { skip }, async () => {
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/pages/custom`);
  await hydrated(page);
  const widget = page.locator('.widget[data-kind="custom"]', { hasText: 'Tenants' });
  const html = widget.getByTestId('custom-html');
  await html.waitFor();
  const inner = await html.innerHTML();
  for (const gone of ['<script', 'javascript:', 'position', 'pwned']) {
    assert.ok(!inner.includes(gone), `${gone} in ${inner}`);
  }
  // No element carries an event handler (the data's "onerror" is text, escaped).
  const handlers = await html.evaluate((root) => [...root.querySelectorAll('*')]
    .flatMap((el) => [...el.attributes].map((a) => a.name))
    .filter((name) => name.startsWith('on')));
  assert.deepEqual(handlers, []);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  // The data's markup is text.
  assert.equal(await html.locator('.tpl-name').textContent(), '<img src=x onerror=alert(1)>');
  assert.equal(await html.locator('.tpl-link').getAttribute('href'), null);
  // The would-be cover stays inside the widget's box.
  const box = await widget.boundingBox();
  const cover = await html.locator('.tpl-cover').boundingBox();
  assert.ok(cover.x >= box.x && cover.y >= box.y, `cover at ${JSON.stringify(cover)}, widget at ${JSON.stringify(box)}`);
  assert.ok(cover.x + cover.width <= box.x + box.width + 1, 'cover inside the widget');
  // The data is made again every second and comes into the same page.
  const cell = html.locator('.tpl-refreshes');
  const first = Number(await cell.textContent());
  await page.evaluate(() => { window.sameDocument = true; });
  await eventually(async () => Number(await cell.textContent()) > first, 15_000, 'the template widget to update');
  assert.equal(await page.evaluate(() => window.sameDocument), true);
  // The declarative view is drawn in the theme's classes.
  const view = page.locator('.widget[data-kind="custom"]', { hasText: 'Backlog' }).locator('.custom-view');
  assert.match(await view.textContent(), /Queued/);
  assert.equal(await view.locator('.block-text strong').textContent(), 'queue');
  assert.deepEqual(errors, []);
  await close();
});

test("a panicking widget shows its error while the page's other widgets update", { skip }, async () => {
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/pages/custom`);
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
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/`);
  await hydrated(page);
  // The overview says what the process uses.
  await eventually(async () => /CPU \d+% of a core .* memory [\d.]+ MiB .* \d+ threads/
    .test(await page.getByTestId('process-usage').textContent()), 10_000, 'the process line');
  await page.getByTestId('restart-link').first().click();
  await page.waitForURL(/\/workers#restart$/);
  await hydrated(page);
  // So does the workers page, with charts of CPU and memory over time.
  assert.match(await page.getByTestId('resources').textContent(), /runtime: \d+ workers/);
  assert.equal(await page.getByTestId('usage').locator('canvas').count(), 2);
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

// A tmux server of our own: tests never touch a user's sessions.
const sock = join(mkdtempSync(join(tmpdir(), 'flowdeck-tmux-')), 'sock');
const tmux = (...args) => execFileSync('tmux', ['-S', sock, ...args], { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', 'top');

test('flowdeck top shows the custom page and restarts a hung worker with R', { skip: skip || !process.env.FLOWDECK_BIN }, async () => {
  try {
    tmux('new-session', '-d', '-s', 'top', '-x', '160', '-y', '48', `${process.env.FLOWDECK_BIN} top ${ex.server.url}; sleep 600`);
    await eventually(() => screen().includes('[live]'), 15_000, 'the monitor to go live');
    tmux('send-keys', '-t', 'top', '6');
    await eventually(() => screen().includes('Queued') && screen().includes('open in a browser'), 15_000, 'the custom page');
    const page = screen();
    assert.match(page, /▸ Tenants[\s│]*\n[\s│]*open in a browser: http:\/\/\S+\/pages\/custom/);
    assert.match(page, /the widget panicked: the tenant service is down/);
    assert.match(page, /\[no failures\]|\[failures\]/);
    // The next item that hangs (60, 117, ...): wait for the worker to hold it.
    await eventually(async () => {
      const w = await api('/api/v1/workers');
      return w.find((x) => x.stage === 'hang' && x.state === 'busy' && x.current_item % 57 === 3);
    }, 30_000, 'a hung item at hang-0');
    tmux('send-keys', '-t', 'top', '2');
    await eventually(() => screen().includes('R restart it'), 5_000, 'the stages tab');
    // work-0, work-1, hang-0.
    tmux('send-keys', '-t', 'top', 'Down');
    tmux('send-keys', '-t', 'top', 'Down');
    tmux('send-keys', '-t', 'top', 'R');
    await eventually(() => screen().includes('Restarted hang-0'), 10_000, 'the restart to be done');
    const audit = await api('/api/v1/audit');
    assert.equal(audit.filter((e) => e.action === 'restart' && e.outcome === 'ok').length, 2);
  } finally {
    try { tmux('kill-server'); } catch { /* none left */ }
    rmSync(join(sock, '..'), { recursive: true, force: true });
  }
});
