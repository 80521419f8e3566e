// Custom pages and the Metrics page in a real browser: the demo's Rust-built page renders
// all six widgets with live data, a page from the config file appears in the navigation
// and renders, switching the theme changes the widgets' colours (the canvas chart is drawn
// again in the new palette), and the Metrics page charts a chosen series and exports it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { launch, watchedPage, eventually, hydrated, untilLive } from '../lib/browser.mjs';

const configDir = mkdtempSync(join(tmpdir(), 'flowdeck-config-'));
const config = join(configDir, 'flowdeck.toml');
writeFileSync(config, `
title = "Acme pipelines"
[palette]
accent = ["#b3261e", "#ffb4ab"]
[[pages]]
slug = "ops"
title = "Ops"
[[pages.widgets]]
at = [0, 0]
span = [2, 1]
chart = { title = "Queued per stage", series = ["flowdeck_stage_queued"], style = "bar", range = "5m" }
[[pages.widgets]]
at = [2, 0]
table = { title = "Stages", source = "stages", columns = ["stage", "completed"] }
`);

let server;
let browser;
before(async () => {
  server = await startServer(['--refresh-ms', '250', '--demo-rate', '200', '--config', config]);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const widget = (page, kind) => page.getByTestId(`widget-${kind}`);

// Painted pixels of the chart's canvas, and how many of them are near the colour `rgb`.
const canvasInk = (page, rgb) => widget(page, 'chart').first().locator('canvas').evaluate((c, rgb) => {
  const want = (rgb.match(/\d+/g) || []).map(Number);
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  let near = 0;
  for (let i = 0; i < data.length; i += 4) {
    // Not premultiplied: an anti-aliased edge keeps the stroke's colour at a lower alpha.
    if (data[i + 3] < 30) continue;
    ink += 1;
    const d = Math.abs(data[i] - want[0]) + Math.abs(data[i + 1] - want[1]) + Math.abs(data[i + 2] - want[2]);
    if (d < 40) near += 1;
  }
  return { ink, near };
}, rgb);

test('the demo page renders all six widgets with live data', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(server.url);
  await page.getByRole('link', { name: 'Model health' }).click();
  await page.waitForURL(/\/pages\/model$/);
  await untilLive(page);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Model health');
  for (const kind of ['metric', 'chart', 'gauge', 'table', 'status', 'log']) {
    assert.ok((await widget(page, kind).count()) >= 1, `a ${kind} widget`);
  }

  // Metric: tokens per second, formatted, once the model has answered.
  const tokens = widget(page, 'metric').first().getByTestId('metric-value');
  await eventually(async () => /^\d+\/s$/.test(await tokens.textContent()), 20_000, 'tokens per second');

  // Chart: two series in the legend and ink on the canvas.
  await eventually(async () => (await widget(page, 'chart').locator('.chart-legend li').count()) === 2, 15_000, 'two legend entries');
  const firstColour = await widget(page, 'chart').locator('.swatch').first().evaluate((e) => getComputedStyle(e).color);
  await eventually(async () => (await canvasInk(page, firstColour)).near > 3, 15_000, 'the first series drawn in its colour');
  // Tooltip on hover.
  const canvas = widget(page, 'chart').locator('canvas');
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width - 6, box.y + box.height / 2);
  await eventually(async () => (await page.getByRole('tooltip').count()) === 1, 5_000, 'a tooltip');
  assert.match(await page.getByRole('tooltip').textContent(), /outcome=completed: \d/);

  // Gauge: memory in bytes, coloured by its thresholds.
  const gauge = widget(page, 'gauge').getByTestId('gauge');
  await eventually(async () => /iB$/.test(await gauge.getByTestId('gauge-value').textContent()), 10_000, 'memory');
  assert.match(await gauge.getAttribute('data-health'), /^(ok|warn|fail)$/);

  // Table: workers from the live store; the processed counts move; sorting and filtering.
  const rows = widget(page, 'table').getByTestId('table-row');
  await eventually(async () => (await rows.count()) === 8, 10_000, 'a page of workers');
  assert.match(await widget(page, 'table').getByTestId('table-range').textContent(), /^1–8 of 16$/);
  const processed = () => rows.evaluateAll((trs) => trs.map((tr) => Number(tr.children[3].textContent)).reduce((a, b) => a + b, 0));
  const before = await processed();
  await eventually(async () => (await processed()) > before, 10_000, 'processed counts rising');
  await widget(page, 'table').getByRole('button', { name: 'Next' }).click();
  assert.equal(await widget(page, 'table').getByTestId('table-range').textContent(), '9–16 of 16');
  assert.ok(await widget(page, 'table').getByRole('button', { name: 'Next' }).isDisabled());
  await widget(page, 'table').getByRole('button', { name: 'Previous' }).click();
  await widget(page, 'table').getByRole('button', { name: 'processed' }).click();
  await widget(page, 'table').getByRole('button', { name: 'processed' }).click();
  assert.equal(await widget(page, 'table').locator('th[aria-sort="descending"]').count(), 1);
  await widget(page, 'table').getByRole('searchbox', { name: 'Filter rows' }).fill('store');
  await eventually(async () => (await rows.count()) === 2, 5_000, 'only the store workers');

  // Status: the pipeline check and the user's async check.
  const checks = widget(page, 'status').getByTestId('check');
  await eventually(async () => (await checks.count()) === 2, 10_000, 'two checks');
  assert.match(await checks.nth(1).textContent(), /model-endpoint.*answered in \d+ ms/);

  // Log: the enrich workers' warnings, as they are logged.
  const logRows = widget(page, 'log').getByTestId('log-row');
  await eventually(async () => (await logRows.count()) > 0, 20_000, 'model warnings');
  const sources = await logRows.locator('.source').allTextContents();
  assert.ok(sources.every((s) => s.startsWith('enrich-')), sources.join(','));
  const levels = await logRows.evaluateAll((els) => els.map((e) => e.dataset.level));
  assert.ok(levels.every((l) => l === 'warn' || l === 'error'), levels.join(','));
  assert.deepEqual(errors, []);
  await close();
});

test('switching the theme changes the widgets colours, the canvas included', async () => {
  const { page, errors, close } = await watchedPage(browser, { colorScheme: 'light' });
  await page.goto(`${server.url}/pages/model`);
  const look = async () => {
    const swatch = await widget(page, 'chart').locator('.swatch').first().evaluate((e) => getComputedStyle(e).color);
    const panel = await widget(page, 'gauge').evaluate((e) => getComputedStyle(e).backgroundColor);
    const fill = await widget(page, 'gauge').locator('.gauge-fill').evaluate((e) => getComputedStyle(e).stroke);
    return { swatch, panel, fill };
  };
  await eventually(async () => (await widget(page, 'chart').locator('.chart-legend li').count()) === 2, 15_000, 'two legend entries');
  const toggle = page.getByTestId('theme-toggle');
  await toggle.click(); // system → light: the same colours
  const light = await look();
  await eventually(async () => (await canvasInk(page, light.swatch)).near > 3, 20_000, 'the light series colour on the canvas');
  await toggle.click(); // light → dark
  const dark = await look();
  assert.notEqual(dark.swatch, light.swatch);
  assert.notEqual(dark.panel, light.panel);
  assert.notEqual(dark.fill, light.fill);
  await eventually(async () => (await canvasInk(page, dark.swatch)).near > 3, 10_000, 'the dark series colour on the canvas');
  assert.deepEqual(errors, []);
  await close();
});

test('a page from the config file is in the navigation and renders, with the palette and title', async () => {
  const { page, errors, close } = await watchedPage(browser, { colorScheme: 'light' });
  await page.goto(server.url);
  assert.equal(await page.getByTestId('brand').textContent(), 'Acme pipelines');
  assert.equal(await page.title(), 'Acme pipelines');
  // The palette's accent, light side, wins over the built-in one.
  const accent = await page.evaluate(() => {
    const probe = document.createElement('span');
    probe.style.color = 'var(--accent)';
    document.body.append(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
  });
  assert.equal(accent, 'rgb(179, 38, 30)');
  await page.getByRole('link', { name: 'Ops' }).click();
  await page.waitForURL(/\/pages\/ops$/);
  const rows = widget(page, 'table').getByTestId('table-row');
  await eventually(async () => (await rows.count()) === 4, 10_000, 'four stages');
  assert.deepEqual(await widget(page, 'table').locator('th').allTextContents(), ['stage', 'completed']);
  await eventually(async () => (await widget(page, 'chart').locator('.chart-legend li').count()) === 4, 15_000, 'a series per stage');
  assert.deepEqual(errors, []);
  await close();
});

test('the Metrics page charts chosen series and exports them', async () => {
  const { page, errors, close } = await watchedPage(browser);
  await page.goto(`${server.url}/metrics`);
  await hydrated(page);
  await eventually(async () => (await page.locator('input[data-metric="demo_tokens_total"]').count()) === 1, 15_000, 'the user series listed');
  await page.locator('input[data-metric="demo_tokens_total"]').check();
  await eventually(async () => (await page.locator('.chart-legend li').allTextContents()).some((t) => t.includes('demo_tokens_total')), 10_000, 'the chosen series charted');
  await page.getByTestId('metrics-range').selectOption('3600');
  await page.getByTestId('metrics-style').selectOption('bar');
  const href = await page.getByTestId('export-csv').getAttribute('href');
  assert.match(href, /names=flowdeck_items_total,demo_tokens_total&range=3600&format=csv/);
  const csv = await (await page.request.get(`${server.url}${href}`)).text();
  assert.match(csv, /^unix_seconds,series,agg,value\n/);
  assert.match(csv, /demo_tokens_total\{model=demo-small-v2\}/);
  const json = await (await page.request.get(`${server.url}${await page.getByTestId('export-json').getAttribute('href')}`)).json();
  assert.ok(json.series.some((s) => s.name === 'demo_tokens_total'));
  assert.deepEqual(errors, []);
  await close();
});
