// The Alerts page against a real receiver: the binary's config file names two alerts, one
// to an HTTP receiver in this test (which checks the HMAC signature as docs/alerts.md tells
// a receiver to) and one to a port where nothing listens. The page lists both with where
// they go by scheme and host only (never the URL's key or the secret); "Send a test" (for
// admins) delivers a signed test event, and each alert's last delivery shows without a
// reload: 200 for the receiver, the refusal for the other. The action is audited.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const SECRET = 'e2e-signing-secret-5d1f';
const KEY = 'T0E2E-B0E2E-url-key-77aa';
const received = [];
let receiver;
let server;
let browser;
const dir = mkdtempSync(join(tmpdir(), 'flowdeck-alerts-'));

before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const at = req.headers['x-flowdeck-timestamp'];
      const want = `v1=${createHmac('sha256', SECRET).update(`${at}.${body}`).digest('hex')}`;
      received.push({ path: req.url, body: JSON.parse(body), signed: req.headers['x-flowdeck-signature'] === want });
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const port = receiver.address().port;
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  const config = join(dir, 'flowdeck.toml');
  // On "store" only: nothing in a healthy demo sends them, so what arrives is the test's.
  writeFileSync(config, `
[[alerts]]
name = "ops"
to = "http://127.0.0.1:${port}/hooks/${KEY}"
on = ["store"]
secret = "file:${join(dir, 'secret')}"

[[alerts]]
name = "nobody"
to = "http://127.0.0.1:1/hook"
on = ["store"]
tries = 1
`);
  server = await startServer(['--config', config]);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the Alerts page lists the alerts and sends a test that is delivered, signed, and shown', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/`);
  await hydrated(page);
  // From the navigation: the page's own module loads.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts' }).click();
  const ops = page.getByTestId('alert-ops');
  const nobody = page.getByTestId('alert-nobody');
  await ops.waitFor({ timeout: 15_000 });
  const port = receiver.address().port;
  assert.match(await ops.textContent(), new RegExp(`json to http://127\\.0\\.0\\.1:${port}/…, signed`));
  assert.match(await nobody.textContent(), /not signed/);
  assert.match(await ops.textContent(), /Nothing sent yet\./);
  const html = await page.content();
  assert.ok(!html.includes(KEY) && !html.includes(SECRET), 'no key and no secret on the page');

  await page.getByTestId('test-ops').click();
  await eventually(async () => received.length === 1, 20_000, 'the test event at the receiver');
  assert.equal(received[0].path, `/hooks/${KEY}`);
  assert.equal(received[0].body.version, 1);
  assert.equal(received[0].body.alert, 'ops');
  assert.deepEqual(received[0].body.events.map((e) => e.event), ['test']);
  assert.ok(received[0].signed, 'the signature verifies with the shared secret');
  const delivered = ops.locator('tr[data-outcome="delivered"]');
  await eventually(async () => (await delivered.count()) === 1, 20_000, 'the delivery on the page');
  assert.match(await delivered.textContent(), /test.*delivered.*200.*1$/);
  assert.match(await ops.getByTestId('alert-counts').textContent(), /1 delivered, 0 failed, 0 dropped/);

  await page.getByTestId('test-nobody').click();
  const failed = nobody.locator('tr[data-outcome="failed"]');
  await eventually(async () => (await failed.count()) === 1, 30_000, 'the refusal on the page');
  assert.match(await failed.textContent(), /test.*failed.*error sending request.*[Cc]onnection refused/);
  assert.equal(received.length, 1, 'the other alert sent nothing to the receiver');

  const audit = await (await fetch(`${server.url}/api/v1/audit`)).json();
  assert.deepEqual(
    audit.filter((e) => e.action === 'test alert').map((e) => [e.target, e.outcome]),
    [['alert ops', 'ok'], ['alert nobody', 'ok']],
  );
  assert.deepEqual(errors, []);
  await close();
});
