/**
 * A removed pod's history through a real daemon (issue 12, item 8): the inspector still shows it,
 * ending in "removed", for removedHistoryRetentionSeconds, and then it is gone.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import BetterSqlite3 from 'better-sqlite3';

const RETENTION_SECONDS = 3;
const paths = tempPaths('pc-hist-');
const daemon = new Daemon(paths);

interface Detail { kind: string; state: string; removedAt?: number; history: { to: string }[] }

before(async () => {
  await mkdir(paths.base, { recursive: true });
  // test/daemon.ts points PODCHART_CONFIG here.
  writeFileSync(join(paths.base, 'no-config.json'), JSON.stringify({ removedHistoryRetentionSeconds: RETENTION_SECONDS }));
  await daemon.start();
});
after(() => daemon.dispose());

const detail = async (id: string): Promise<{ status: number; body: Detail }> => {
  const res = await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/actors/${id}`);
  return { status: res.status, body: (await res.json()) as Detail };
};

test('a removed pod stays on the inspector with its history for the retention period, then is dropped', { timeout: 60_000 }, async () => {
  const { podSandboxId: id } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('removed-history') });
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: id });
  const removed = await detail(id);
  assert.equal(removed.status, 200, 'the removed pod is gone from the inspector at once');
  assert.equal(removed.body.kind, 'sandbox');
  assert.equal(removed.body.state, 'removed');
  assert.equal(removed.body.history.at(-1)?.to, 'removed');
  assert.ok(removed.body.history.some((t) => t.to === 'RUNNING'), JSON.stringify(removed.body.history));
  assert.ok(typeof removed.body.removedAt === 'number' && Date.now() - removed.body.removedAt < RETENTION_SECONDS * 1000);
  // The sweep runs every second at this retention: poll for its effect, with a deadline.
  await eventually('the removed pod\'s history to be dropped', async () => (await detail(id)).status === 404, (RETENTION_SECONDS + 10) * 1000);
  const db = new BetterSqlite3(join(paths.root, 'podchart.db'), { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.prepare('SELECT COUNT(*) FROM transitions WHERE actor_id = ?').pluck().get(id), 0, 'its transitions are still in the database');
  } finally {
    db.close();
  }
});
