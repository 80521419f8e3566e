// Sign-in in the browser: a stranger lands on the login page; a viewer signs in, watches
// the pipeline live and gets no control buttons; an admin signs in, pauses a stage from
// the page and sees it paused (the audit log names them); logging out ends the session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, untilLive } from '../lib/browser.mjs';

/// A password hash made by the binary under test, as a user would make one.
function hash(password) {
  const out = spawnSync(process.env.FLOWDECK_BIN, ['hash-password'], { input: `${password}\n`, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim();
}

let dir;
let server;
let browser;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flowdeck-auth-'));
  const config = join(dir, 'flowdeck.toml');
  writeFileSync(config, `
[auth]
[[auth.users]]
name = "ada"
password_hash = "${hash('ada-secret')}"
role = "admin"

[[auth.users]]
name = "vic"
password_hash = "${hash('vic-secret')}"
role = "viewer"
`);
  server = await startServer(['--refresh-ms', '100', '--config', config]);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function signIn(page, path, user, password) {
  await page.goto(`${server.url}${path}`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${server.url}${path}`);
  await untilLive(page);
}

test('a viewer watches live but gets no controls', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await signIn(page, '/workers', 'vic', 'vic-secret');
  assert.match(await page.getByTestId('account').textContent(), /vic · viewer/);
  assert.equal(await page.locator('.stage-workers').count(), 4);
  assert.equal(await page.getByTestId('pause-enrich').count(), 0);
  // The API refuses a viewer even with the session's CSRF token.
  const status = await page.evaluate(async () => {
    const me = await (await fetch('/api/v1/session')).json();
    const res = await fetch('/api/v1/stages/enrich/pause', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf }, body: '{}',
    });
    return res.status;
  });
  assert.equal(status, 403);
  // The refusal is in the control log on the page, marked as refused.
  const refused = page.locator('[data-testid="audit"] tr[data-outcome="refused"]');
  await eventually(async () => (await refused.count()) === 1, 10_000, 'the refused row');
  assert.match(await refused.textContent(), /vic.*pause.*enrich.*viewer/);
  assert.deepEqual(errors.filter((e) => !e.includes('403')), []);
  await close();
});

test('an admin pauses a stage from the page, then logs out', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await signIn(page, '/workers', 'ada', 'ada-secret');
  const stage = page.locator('.stage-workers[data-stage="enrich"]');
  await eventually(async () => (await page.getByTestId('pause-enrich').count()) === 1, 10_000, 'the pause button');
  await page.getByTestId('pause-enrich').click();
  await eventually(async () => (await stage.locator('h2 .tag').count()) === 1, 5_000, 'the paused tag');
  const audit = await page.evaluate(async () => (await fetch('/api/v1/audit')).json());
  // The viewer's refused attempt (previous test) and the admin's pause, each named.
  assert.deepEqual(audit.map((a) => [a.user, a.action, a.outcome]), [
    ['vic', 'pause', 'vic is a viewer: only admins may control the pipeline'],
    ['ada', 'pause', 'ok'],
  ]);

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(`${server.url}/login`);
  await page.goto(`${server.url}/workers`);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.deepEqual(errors, []);
  await close();
});
