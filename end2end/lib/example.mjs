// An example program (a cargo example that serves a dashboard) for one test file: started
// with a browser before the file's tests, killed after. `variable` names the environment
// variable that gives the binary; without it, the file's tests are skipped (`ex.skip`).
import { before, after } from 'node:test';
import { rmSync } from 'node:fs';
import { startServer } from './server.mjs';
import { launch } from './browser.mjs';

export function example(variable, name) {
  const ex = { skip: !process.env[variable], server: undefined, browser: undefined };
  before(async () => {
    if (ex.skip) return;
    ex.server = await startServer([], { bin: process.env[variable], name });
    ex.browser = await launch();
  });
  after(async () => {
    await ex.browser?.close();
    const { server } = ex;
    if (server) {
      process.kill(server.pid, 'SIGKILL');
      rmSync(server.dir, { recursive: true, force: true });
      rmSync(server.data, { recursive: true, force: true });
    }
  });
  return ex;
}
