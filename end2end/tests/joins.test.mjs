// A pipeline with a join and a broadcast edge (flowdeck/examples/joins.rs): the graph
// draws the broadcast edge dashed and the join node with its waiting groups, the API
// gives the join's groups, and a joined item's page lists the pages it was made from,
// each linked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { example } from '../lib/example.mjs';
import { watchedPage, eventually, hydrated } from '../lib/browser.mjs';

const ex = example('JOINS_BIN', 'joins');
const { skip } = ex;

const api = async (path) => (await fetch(`${ex.server.url}${path}`)).json();

test('the graph draws the broadcast edge dashed and the join with its waiting groups', { skip }, async () => {
  // Every fifth document's pages take 1.5 s: its group waits, some parts in.
  const stages = await eventually(async () => {
    const s = await api('/api/v1/stages');
    const join = s.find((x) => x.name === 'assemble')?.join;
    return join && join.waiting > 0 && join.arrived < join.expected ? s : null;
  }, 20_000, 'a group waiting for parts');
  const join = stages.find((x) => x.name === 'assemble').join;
  assert.equal(stages[join.of].name, 'split');

  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/`);
  await hydrated(page);
  const graph = page.getByTestId('pipeline-graph');
  assert.equal(await graph.locator('.edge.broadcast').count(), 1);
  const node = graph.locator('.node[data-stage="assemble"]');
  assert.match(await node.getAttribute('class'), /\bjoin\b/);
  // Live: the node says how many groups wait and their parts arrived of expected.
  await eventually(async () => {
    const text = await node.textContent();
    const m = text.match(/⋈ (\d+) groups · (\d+)\/(\d+)/);
    // And how long the oldest group has waited.
    return m && Number(m[1]) > 0 && Number(m[2]) <= Number(m[3]) && /oldest \d/.test(text);
  }, 15_000, 'waiting groups on the join node');
  assert.doesNotMatch(await graph.locator('.node[data-stage="ocr"]').textContent(), /⋈/);
  assert.deepEqual(errors, []);
  await close();
});

test("a joined item's page lists every part it was made from, each linked", { skip }, async () => {
  // A record at `store` was joined at `assemble`: its parents are its document's pages.
  const row = await eventually(async () => {
    const rows = (await api('/api/v1/tasks?stage=store&status=completed&limit=50')).items ?? [];
    for (const r of rows) {
      const d = await api(`/api/v1/tasks/${r.id}`);
      if (d.detail?.parents?.length === 4) return d;
    }
    return null;
  }, 20_000, 'a record joined from 4 pages');
  const parents = row.detail.parents;
  const { page, errors, close } = await watchedPage(ex.browser);
  await page.goto(`${ex.server.url}/tasks/${row.detail.id}`);
  await hydrated(page);
  const made = page.getByTestId('provenance').locator('li', { hasText: 'made from' }).locator('a');
  assert.equal(await made.count(), 4);
  const linked = (await made.allTextContents()).map((t) => Number(t.replace('#', '')));
  assert.deepEqual([...linked].sort((a, b) => a - b), [...parents].sort((a, b) => a - b));
  await made.first().click();
  await eventually(async () => page.url().endsWith(`/tasks/${linked[0]}`), 10_000, 'the part\'s page');
  await eventually(async () => (await page.getByTestId('task-title').textContent()) === `Task #${linked[0]}`, 10_000, 'its title');
  assert.deepEqual(errors, []);
  await close();
});
