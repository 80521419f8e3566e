// The release binary carries the whole site: copied alone into an empty directory it serves
// the pages and every asset the pages load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('the binary is alone in its directory', () => {
  assert.deepEqual(server.files(), ['flowdeck']);
});

test('it serves the page, the wasm, the js, the css and public files', async () => {
  const page = await fetch(`${server.url}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  const refs = [...html.matchAll(/(?:href|src|module_or_path)\s*[:=]\s*["']?(\/pkg\/[^"' )]+)/g)].map((m) => m[1]);
  const wanted = new Set([...refs, '/pkg/flowdeck.css', '/favicon.svg']);
  assert.ok([...wanted].some((p) => p.endsWith('.wasm')), `the page names a wasm file: ${[...wanted]}`);
  assert.ok([...wanted].some((p) => p.endsWith('.js')), `the page names a js file: ${[...wanted]}`);
  const types = { '.wasm': 'application/wasm', '.js': 'javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  for (const path of wanted) {
    const res = await fetch(`${server.url}${path}`);
    assert.equal(res.status, 200, `${path} is served`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.length > 0, `${path} is not empty`);
    const ext = Object.keys(types).find((e) => path.endsWith(e));
    const type = res.headers.get('content-type') ?? '';
    assert.ok(type.includes(types[ext]), `${path} content type is ${types[ext]}, got ${type}`);
  }
});

test('an asset revalidates with its ETag', async () => {
  const first = await fetch(`${server.url}/pkg/flowdeck.css`);
  const etag = first.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${server.url}/pkg/flowdeck.css`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});
