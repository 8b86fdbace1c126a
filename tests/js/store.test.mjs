// The store going away under a JS client: a subscribe refused with `store_unavailable` is
// retried on the same connection until the store answers, then delivery goes on.
//
// The fault is real: the server's SQLite files are made immutable (`chattr +i`), so every
// write fails with EPERM until `chattr -i`. Needs root and a file system with the immutable
// attribute (ext4 in CI); skipped elsewhere.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './support/server.mjs';
import { apiPublish, collect, connected, makeClient, uniqueChannel, waitFor } from './support/helpers.mjs';

const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-store-test-'));
/** @type {import('./support/server.mjs').RunningServer} */
let server;
before(async () => {
  server = await startServer({ args: ['--data-dir', dataDir] });
});
after(async () => {
  setImmutable(false);
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** @param {boolean} on @returns {boolean} whether chattr worked */
function setImmutable(on) {
  // Not the -shm file: SQLite maps it into memory, and a write to a mapped immutable file
  // kills the process with SIGBUS (an operator's sabotage, not a store failure).
  const files = readdirSync(dataDir)
    .filter((f) => f === 'streams.db' || f === 'streams.db-wal')
    .map((f) => join(dataDir, f));
  try {
    execFileSync('chattr', [on ? '+i' : '-i', ...files], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('a subscribe refused while the store cannot write is retried until it can', async (t) => {
  const client = makeClient(t, server.url, { transports: ['websocket'] });
  client.connect();
  await connected(client, 'websocket');
  // Make sure the store files exist before freezing them.
  await apiPublish(server.url, uniqueChannel('warm'), 1);
  if (!setImmutable(true)) {
    t.skip('chattr +i is not available here (needs root and ext4)');
    return;
  }
  const channel = uniqueChannel('frozen');
  const sub = client.subscribe(channel);
  const refused = await waitFor(sub, 'error', { what: 'a store_unavailable error' });
  assert.equal(refused.error.code, 'store_unavailable');
  assert.equal(sub.state, 'subscribing', 'the subscription is kept for a retry');

  setImmutable(false);
  await waitFor(sub, 'subscribed', { timeoutMs: 20_000, what: 'the retried subscribe' });
  const got = collect(sub);
  await apiPublish(server.url, channel, { after: 'thaw' });
  await got.waitForCount(1);
  assert.deepEqual(got.data(), [{ after: 'thaw' }]);
});
