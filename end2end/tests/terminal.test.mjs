// The terminal, for real: `flowdeck top` in tmux against the real binary (through a proxy
// that can cut the stream), and the progress example's bars. tmux is a real terminal: we
// send keys and read the screen as a user sees it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { startProxy } from '../lib/proxy.mjs';
import { eventually } from '../lib/browser.mjs';

const bin = process.env.FLOWDECK_BIN;
// A tmux server of our own: tests never touch a user's sessions.
const sock = join(mkdtempSync(join(tmpdir(), 'flowdeck-tmux-')), 'sock');
const tmux = (...args) => execFileSync('tmux', ['-S', sock, ...args], { encoding: 'utf8' });
const screen = (s) => tmux('capture-pane', '-p', '-t', s);
const keys = (s, ...k) => tmux('send-keys', '-t', s, ...k);

let server;
let proxy;
before(async () => {
  server = await startServer(['--refresh-ms', '100']);
  proxy = await startProxy(server.url);
});
after(async () => {
  try { tmux('kill-server'); } catch { /* none left */ }
  await proxy?.stop();
  await server?.stop();
  rmSync(join(sock, '..'), { recursive: true, force: true });
});

/** The number after `label` on the screen. */
function number(text, label) {
  const m = text.match(new RegExp(`${label} ([\\d,]+)`));
  return m ? Number(m[1].replaceAll(',', '')) : null;
}

test('flowdeck top: counts move, a filter narrows the tasks, a cut stream resumes, quitting restores the terminal', async () => {
  // After quitting, the shell says whether the terminal is back in canonical mode.
  tmux('new-session', '-d', '-s', 'top', '-x', '160', '-y', '48',
    `${bin} top ${proxy.url}; echo "exited $?"; stty -a | grep -o -- '-\\?icanon'; sleep 600`);
  await eventually(() => screen('top').includes('[live]'), 15_000, 'the monitor to go live');
  const first = number(screen('top'), 'Completed');
  assert.ok(first !== null, screen('top'));
  await eventually(() => number(screen('top'), 'Completed') > first, 10_000, 'counts to move');
  assert.match(screen('top'), /document-enrichment is running/);

  // Tasks, then only the failed ones, then only one error kind.
  keys('top', '3');
  await eventually(() => /Tasks: [\d,]+ of [\d,]+ retained/.test(screen('top')), 5_000, 'the task list');
  const shown = (text) => Number(text.match(/Tasks: ([\d,]+) of/)[1].replaceAll(',', ''));
  const all = shown(screen('top'));
  for (let i = 0; i < 5; i += 1) keys('top', 's');
  await eventually(() => screen('top').includes('status: failed'), 5_000, 'the status filter');
  const failedRows = () => screen('top').split('\n').filter((l) => /^\s*│?\s*#\d+/.test(l));
  await eventually(() => failedRows().length > 0, 20_000, 'failed tasks to show');
  const failed = shown(screen('top'));
  assert.ok(failed < all, `failed ${failed} of ${all}`);
  assert.ok(failedRows().every((l) => l.includes('failed')), failedRows().join('\n'));
  keys('top', '/');
  for (const c of 'StoreRejected') keys('top', c);
  keys('top', 'Enter');
  await eventually(() => screen('top').includes('text: StoreRejected'), 5_000, 'the text filter');
  assert.ok(failedRows().every((l) => l.includes('StoreRejected')), failedRows().join('\n'));
  // Enter opens the selected task: its stages, error and history.
  if (failedRows().length > 0) {
    keys('top', 'Enter');
    await eventually(() => /Task #\d+ failed at store/.test(screen('top')), 5_000, 'the task');
    assert.match(screen('top'), /StoreRejected: store rejected the write/);
    keys('top', 'Escape');
  }
  keys('top', '1');

  // Cut the stream: the monitor says so, resumes with Last-Event-ID, and counts move on.
  await new Promise((r) => setTimeout(r, 500));
  proxy.cut();
  await eventually(() => screen('top').includes('[reconnecting'), 5_000, 'the monitor to notice');
  await eventually(() => screen('top').includes('[live]'), 15_000, 'the monitor to reconnect');
  const resumed = proxy.requests.filter((r) => r.path.split('?')[0] === '/api/events' && r.lastEventId);
  assert.ok(resumed.length >= 1, 'it resumed with Last-Event-ID');
  await eventually(() => resumed[0].firstEvent !== null, 5_000, 'a frame after resuming');
  assert.equal(resumed[0].firstEvent, 'delta', 'the missed deltas, not a fresh full frame');
  const after = number(screen('top'), 'Completed');
  await eventually(() => number(screen('top'), 'Completed') > after, 10_000, 'counts to move after the cut');

  keys('top', '?');
  await eventually(() => screen('top').includes('filter tasks by id'), 5_000, 'the help');
  keys('top', 'x');
  keys('top', 'q');
  await eventually(() => screen('top').includes('exited 0'), 5_000, 'the monitor to exit');
  const text = screen('top');
  assert.match(text, /^icanon$/m, 'the terminal is back in canonical mode (raw mode off)');
  assert.ok(!text.includes('flowdeck top'), 'the alternate screen is gone');
});

test('flowdeck top --run opens a run from the run store', async () => {
  tmux('new-session', '-d', '-s', 'run', '-x', '160', '-y', '48', `${bin} top ${server.url} --run 1; sleep 600`);
  await eventually(() => screen('run').includes('[stored run #1]'), 15_000, 'the stored run');
  assert.match(screen('run'), /document-enrichment is/);
  keys('run', '3');
  await eventually(() => /Tasks: [\d,]+ of [\d,]+ retained/.test(screen('run')), 5_000, 'its tasks');
  keys('run', 'Enter');
  await eventually(() => /Task #\d+ \w+ at \w+/.test(screen('run')), 5_000, 'a stored task');
  keys('run', 'q');
});

test('flowdeck top uses an API token for a dashboard with sign-in', async () => {
  const made = execFileSync(bin, ['new-token'], { encoding: 'utf8' });
  const token = made.match(/^token:\s+(\S+)/m)[1];
  const sha = made.match(/^sha256:\s+(\S+)/m)[1];
  const dir = mkdtempSync(join(tmpdir(), 'flowdeck-top-auth-'));
  const config = join(dir, 'flowdeck.toml');
  writeFileSync(config, `[auth]\n[[auth.tokens]]\nname = "top"\nsha256 = "${sha}"\nrole = "viewer"\n`);
  const guarded = await startServer(['--refresh-ms', '100', '--config', config]);
  try {
    tmux('new-session', '-d', '-s', 'anon', '-x', '160', '-y', '48', `${bin} top ${guarded.url}; sleep 600`);
    await eventually(() => screen('anon').includes('wants sign-in'), 10_000, 'the sign-in message');
    tmux('new-session', '-d', '-s', 'auth', '-x', '160', '-y', '48', `${bin} top ${guarded.url} --token ${token}; sleep 600`);
    await eventually(() => screen('auth').includes('[live]'), 15_000, 'the monitor, signed in');
    assert.match(screen('auth'), /document-enrichment is running/);
  } finally {
    await guarded.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flowdeck top answers a question from its Questions tab, and flowdeck answer from a script', async () => {
  const asking = await startServer(['--refresh-ms', '100', '--demo-review-every', '60', '--demo-review-after-secs', '300']);
  try {
    tmux('new-session', '-d', '-s', 'ask', '-x', '160', '-y', '48', `${bin} top ${asking.url}; sleep 600`);
    await eventually(() => /\d+ questions? wait/.test(screen('ask')), 30_000, 'the pending count in the header');
    keys('ask', '5');
    await eventually(() => /Questions · \d+ pending/.test(screen('ask')), 5_000, 'the Questions tab');
    await eventually(() => /#\d+\s+pending/.test(screen('ask')), 10_000, 'a pending question');
    keys('ask', 'Enter');
    await eventually(() => screen('ask').includes('Answer:'), 5_000, 'the question open');
    const id = Number(screen('ask').match(/Question #(\d+)/)[1]);
    // The note is the first field: type into it, choose "hold", answer.
    for (const c of 'from tmux') keys('ask', c);
    keys('ask', 'Right');
    keys('ask', 'Enter');
    await eventually(() => screen('ask').includes('Answered “hold”'), 10_000, 'the answer taken');
    const q = await (await fetch(`${asking.url}/api/v1/questions/${id}`)).json();
    assert.equal(q.state, 'answered');
    assert.equal(q.answer.choice, 'hold');
    assert.equal(q.answer.data.note, 'from tmux');
    // A second answer to it is refused, and says who answered.
    const again = spawnSync(bin, ['answer', asking.url, String(id), 'publish'], { encoding: 'utf8' });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already answered by anonymous/);
    // Another one, from a script.
    const other = await eventually(async () => {
      const page = await (await fetch(`${asking.url}/api/v1/questions?state=pending`)).json();
      return page.questions.find((x) => x.id !== id);
    }, 30_000, 'another pending question');
    const ok = spawnSync(bin, ['answer', asking.url, String(other.id), 'publish', '--data', '{"tags": ["x"]}'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`question ${other.id} .* answered "publish"`));
    const bad = spawnSync(bin, ['answer', asking.url, '999999', 'publish'], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no question 999999/);
  } finally {
    try { tmux('kill-session', '-t', 'ask'); } catch { /* gone */ }
    await asking.stop();
  }
});

test('flowdeck top refuses to draw when its output is not a terminal', () => {
  const r = spawnSync(bin, ['top', server.url], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /standard output is not one/);
});

test('the progress bars keep log lines whole, and end with the final status', { skip: !process.env.PROGRESS_BIN }, async () => {
  tmux('new-session', '-d', '-s', 'bar', '-x', '150', '-y', '60', `${process.env.PROGRESS_BIN} full; echo "exited $?"; sleep 600`);
  // While it runs: the bar with its percentage and a line per stage.
  await eventually(() => /documents \[[█▓░]+\]\s+\d+% \| \d+\/600 \|/.test(screen('bar')), 15_000, 'the bar');
  assert.match(screen('bar'), /^ {2}summarize\s+queued/m);
  await eventually(() => screen('bar').includes('exited 0'), 60_000, 'the run to end');
  const lines = screen('bar').split('\n').filter((l) => l.trim() !== '');
  // Every log line whole: nothing drawn into it, nothing of it left on a bar's line.
  const logs = lines.filter((l) => l.includes('WARN'));
  assert.ok(logs.length > 10, lines.join('\n'));
  for (const l of logs) assert.match(l, /^\S+Z\s+WARN the model timed out; retrying document=\d+$/, JSON.stringify(l));
  // The final status, once, after the last log line.
  const at = lines.findIndex((l) => l.startsWith('documents finished: '));
  assert.ok(at > 0, lines.join('\n'));
  assert.match(lines[at], /^documents finished: 600\/600 \(100%\) \| .* \| 7 failed/);
  assert.ok(!lines.slice(at).some((l) => l.includes('WARN')), lines.join('\n'));
  assert.match(lines.slice(at).join('\n'), /failures by kind: Empty 7/);
  assert.ok(!lines.some((l) => /\d+% \|/.test(l)), 'no bar left behind:\n' + lines.join('\n'));
});
