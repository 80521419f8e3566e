// Starts the flowdeck binary the way a user deploys it: copied alone into an empty
// directory, with no Cargo.toml nearby and no LEPTOS_* variables, on a free port.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// `options.bin` names another binary to run the same way (STANDALONE_BIN: a user's crate
// built on flowdeck), which takes its port from FLOWDECK_PORT instead of `--port`.
export async function startServer(args = [], options = {}) {
  const bin = options.bin ?? process.env.FLOWDECK_BIN;
  if (!bin) throw new Error('FLOWDECK_BIN must name the flowdeck binary to test');
  const name = options.name ?? 'flowdeck';
  const dir = mkdtempSync(join(tmpdir(), `${name}-alone-`));
  const exe = join(dir, name);
  copyFileSync(bin, exe);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('LEPTOS_') && !k.startsWith('FLOWDECK_')),
  );
  const argv = options.bin ? args : ['--port', '0', ...args];
  if (options.bin) env.FLOWDECK_PORT = '0';
  // `options.env` sets variables of its own (FLOWDECK_REFRESH_MS for a bench).
  Object.assign(env, options.env ?? {});
  // The run store goes where the platform's data directory is: a directory of its own,
  // so that servers started side by side do not share one.
  // `options.data` reuses another server's (a restart on the same run store).
  const data = options.data ?? mkdtempSync(join(tmpdir(), `${name}-data-`));
  env.XDG_DATA_HOME = data;
  const child = spawn(exe, argv, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL printed in 15 s; log:\n${log}`)), 15_000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`flowdeck exited with ${code}; log:\n${log}`)); });
  });
  return {
    url,
    dir,
    data,
    pid: child.pid,
    files: () => readdirSync(dir),
    /** SIGTERM, as a service manager stops it; `keepData` leaves its run store. */
    async stop({ keepData = false } = {}) {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
      if (!keepData) rmSync(data, { recursive: true, force: true });
    },
  };
}
