// Themes and accessibility: the toggle cycles system → light → dark, changes the colours
// at once, and the choice survives a reload (the server renders it from the cookie). Every
// page passes axe-core with no serious or critical violation in both light and dark.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, untilLive } from '../lib/browser.mjs';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let server;
let browser;
before(async () => {
  server = await startServer(['--refresh-ms', '250']);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);

test('the theme toggle changes the colours and is remembered', async () => {
  const { page, errors, close } = await watchedPage(browser, { colorScheme: 'dark' });
  await page.goto(server.url);
  await untilLive(page);
  const toggle = page.getByTestId('theme-toggle');
  assert.equal(await toggle.textContent(), 'Theme: system');
  assert.equal(await background(page), 'rgb(15, 20, 25)', 'system follows the dark OS setting');
  await toggle.click();
  assert.equal(await toggle.textContent(), 'Theme: light');
  assert.equal(await background(page), 'rgb(255, 255, 255)');
  await toggle.click();
  assert.equal(await toggle.textContent(), 'Theme: dark');
  assert.equal(await background(page), 'rgb(15, 20, 25)');
  await toggle.click();
  await toggle.click();
  assert.equal(await toggle.textContent(), 'Theme: light');
  // The server renders the remembered choice in the first paint.
  const html = await (await page.request.get(server.url)).text();
  assert.match(html, /<html lang="en" data-theme="light"/);
  await page.reload();
  assert.equal(await background(page), 'rgb(255, 255, 255)');
  assert.equal(await page.getByTestId('theme-toggle').textContent(), 'Theme: light');
  assert.deepEqual(errors, []);
  await close();
});

for (const scheme of ['light', 'dark']) {
  test(`every page passes axe-core in ${scheme}`, async () => {
    // axe is injected as a script, which the pages' CSP would refuse.
    const { page, close } = await watchedPage(browser, { colorScheme: scheme, bypassCSP: true });
    for (const path of ['/', '/workers', '/tasks', '/errors', '/streaming', '/logs', '/metrics', '/pages/model', '/pipelines']) {
      await page.goto(`${server.url}${path}`);
      await untilLive(page);
      await page.addScriptTag({ content: axeSource });
      const found = await page.evaluate(async () => {
        const r = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] });
        return r.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
      });
      assert.deepEqual(found, [], `${path} in ${scheme}`);
    }
    await close();
  });
}
