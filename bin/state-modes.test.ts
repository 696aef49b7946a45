import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { tightenState } from './state-modes.js';

const base = mkdtempSync(join(tmpdir(), 'podchart-state-modes-'));
after(() => rmSync(base, { recursive: true, force: true }));
const mode = (p: string): number => lstatSync(p).mode & 0o7777;

/** A path under base with `m`: a dir when it ends in '/'. Parents are made 0755, as an older podchart left them. */
function old(rel: string, m: number): string {
  const p = join(base, rel);
  if (rel.endsWith('/')) mkdirSync(p, { recursive: true, mode: 0o755 });
  else {
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    writeFileSync(p, rel);
  }
  chmodSync(p, m);
  return p;
}

test('an older tree: ours made 0700/0600; layer content, upper dirs, pod files, runc state and the socket kept', async () => {
  const root = old('root/', 0o711);
  const run = old('run/', 0o711);
  const ours = [
    old('root/podchart.db', 0o644),
    old('root/images/content/blobs/sha256/ab', 0o644),
    old('root/images/layers/c03541ad2063/diffid', 0o644),
    old('root/containers/c1/bundle/config.json', 0o644),
    old('root/containers/c1/rootfs/work/', 0o755),
    old('root/cni/p1.json', 0o644),
    old('run/sandboxes/p1/exits/p1', 0o644),
    old('run/podchartd.pid', 0o644),
  ];
  const kept = [
    old('root/images/layers/c03541ad2063/fs/', 0o755),
    old('root/images/layers/c03541ad2063/fs/bin/su', 0o4755),
    old('root/containers/c1/rootfs/upper/', 0o755),
    old('root/containers/c1/rootfs/upper/data', 0o644),
    old('root/pause/rootfs/', 0o755),
    old('root/sandboxes/p1/hosts', 0o644),
    old('root/sandboxes/p1/resolv.conf', 0o644),
    old('run/runtime/runc/c1/', 0o711),
    old('run/cri.sock', 0o660), // a plain file standing in for the socket: only its path matters
  ];
  const before = new Map(kept.map((p) => [p, mode(p)]));
  const changed = await tightenState({ rootDir: root, runDir: run, socket: join(run, 'cri.sock'), cniCacheDir: join(root, 'cni') });
  assert.ok(changed > ours.length, `changed ${changed}`);
  for (const p of [root, run, ...ours]) assert.equal(mode(p) & 0o077, 0, `${p} is ours: ${mode(p).toString(8)}`);
  for (const p of ours.map(dirname)) assert.equal(mode(p), 0o700, `${p}, a dir of ours`);
  for (const [p, m] of before) assert.equal(mode(p), m, `${p} is not ours to change`);
  assert.equal(mode(join(run, 'runtime', 'runc')), 0o700, "the runtime's root is ours");
});

test('a CNI cache placed outside rootDir: the dir and our cache files narrowed, nothing else', async () => {
  const root = old('r2/', 0o755);
  const run = old('u2/', 0o755);
  const cache = old('cache/p1.json', 0o644);
  const foreign = old('cache/networks/lease', 0o644);
  await tightenState({ rootDir: root, runDir: run, socket: join(run, 'cri.sock'), cniCacheDir: dirname(cache) });
  assert.deepEqual([mode(dirname(cache)), mode(cache)], [0o700, 0o600]);
  assert.deepEqual([mode(dirname(foreign)), mode(foreign)], [0o755, 0o644], 'not our cache files: left alone');
});
