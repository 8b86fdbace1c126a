/**
 * @module server
 *
 * Runs the real switchboard binary for a test: `switchboard serve --listen 127.0.0.1:0`,
 * waits for its one `listening on http://…` line on stdout, and kills it afterwards. The
 * binary is `$SWITCHBOARD_BIN`, by default `<repo>/target/debug/switchboard`. Shared by the
 * Node tests (`tests/js`) and the browser tests (`tests/browser`); uses only Node built-ins.
 */

import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Root of the repository. */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The server binary under test. */
export const BIN = process.env.SWITCHBOARD_BIN ?? `${REPO}target/debug/switchboard`;

const LISTENING = /^listening on (https?:\/\/\S+)$/m;

/**
 * @typedef {object} RunningServer
 * @property {string} url the http base, e.g. `http://127.0.0.1:41234`
 * @property {string} listen the `host:port` it listens on
 * @property {import('node:child_process').ChildProcess} child
 * @property {() => string} output what it printed so far (stdout and stderr), for failures
 * @property {(signal?: NodeJS.Signals) => Promise<void>} stop ends it and waits for its exit
 */

/**
 * Starts the server and resolves once it listens.
 *
 * @param {{listen?: string, args?: string[], env?: Record<string, string>, config?: string, timeoutMs?: number}} [options]
 *   `listen`: the address (default `127.0.0.1:0`); `args`: extra flags after `serve`; `env`:
 *   extra environment, e.g. `{SWITCHBOARD_CHANNELS__HISTORY_SIZE: '5'}` or
 *   `{SWITCHBOARD_AUTH__HMAC_SECRET: '…'}`; `config`: the text of a TOML configuration file,
 *   written to a temporary file passed with `--config` (for what the environment cannot
 *   say, such as namespace rules)
 * @returns {Promise<RunningServer>}
 */
export async function startServer({
  listen = '127.0.0.1:0',
  args = [],
  env: extra = {},
  config = undefined,
  timeoutMs = 20_000,
} = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no server binary at ${BIN}: run \`cargo build -p switchboard\` or set SWITCHBOARD_BIN`);
  }
  // The server reads every SWITCHBOARD_* variable as configuration and refuses unknown ones,
  // so the test's own SWITCHBOARD_BIN must not reach it.
  const env = { ...process.env, ...extra };
  delete env.SWITCHBOARD_BIN;
  // Each server keeps its SQLite store in its own temporary directory unless told otherwise.
  const chosen = args.includes('--data-dir') || args.includes('--store') || 'SWITCHBOARD_STORE__DATA_DIR' in extra;
  const dataDir = chosen ? null : mkdtempSync(join(tmpdir(), 'switchboard-test-'));
  const storeArgs = dataDir ? ['--data-dir', dataDir] : [];
  const configDir = config === undefined ? null : mkdtempSync(join(tmpdir(), 'switchboard-config-'));
  const configArgs = [];
  if (configDir) {
    const file = join(configDir, 'switchboard.toml');
    writeFileSync(file, config);
    configArgs.push('--config', file);
  }
  const child = spawn(BIN, ['serve', ...configArgs, '--listen', listen, ...storeArgs, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let output = '';
  /** @param {Buffer} chunk */
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (dataDir) exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  if (configDir) exited.then(() => rmSync(configDir, { recursive: true, force: true }));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${BIN} did not print "listening on …" within ${timeoutMs} ms. Output:\n${output}`));
    }, timeoutMs);
    const onData = () => {
      const m = output.match(LISTENING);
      if (!m) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      resolve(m[1]);
    };
    child.stdout.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${BIN} exited (${code ?? signal}) before listening. Output:\n${output}`));
    });
  });

  return {
    url,
    listen: new URL(url).host,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
