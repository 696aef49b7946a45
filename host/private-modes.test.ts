import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePrivate, tightenTree } from './private-modes.js';

const dir = mkdtempSync(join(tmpdir(), 'podchart-modes-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string): number => lstatSync(p).mode & 0o7777;

function made(rel: string, m: number, kind: 'dir' | 'file' = 'file'): string {
  const p = join(dir, rel);
  if (kind === 'dir') mkdirSync(p, { recursive: true });
  else writeFileSync(p, rel);
  chmodSync(p, m);
  return p;
}

test('makePrivate drops group and other bits only, and skips absent paths and symlinks', async () => {
  const file = made('wide', 0o644);
  const exec = made('script', 0o755);
  const tight = made('tight', 0o400);
  const outside = made('outside', 0o644);
  const link = join(dir, 'link');
  symlinkSync(outside, link);
  await makePrivate(file, exec, tight, link, join(dir, 'absent'));
  assert.equal(mode(file), 0o600);
  assert.equal(mode(exec), 0o700);
  assert.equal(mode(tight), 0o400);
  assert.equal(mode(outside), 0o644, 'a symlink is not followed');
});

test('tightenTree narrows dirs and files, neither changes nor enters what keep names, follows no link', async () => {
  const top = made('tree', 0o755, 'dir');
  made('tree/a', 0o755, 'dir');
  made('tree/a/file', 0o644);
  const kept = made('tree/kept', 0o755, 'dir');
  const inside = made('tree/kept/setuid', 0o4755);
  const elsewhere = made('elsewhere', 0o755, 'dir');
  const target = made('elsewhere/file', 0o644);
  symlinkSync(elsewhere, join(top, 'to-elsewhere'));
  const changed = await tightenTree(top, (p) => p === kept);
  assert.equal(changed, 3);
  assert.deepEqual([mode(top), mode(join(top, 'a')), mode(join(top, 'a/file'))], [0o700, 0o700, 0o600]);
  assert.deepEqual([mode(kept), mode(inside)], [0o755, 0o4755]);
  assert.deepEqual([mode(elsewhere), mode(target)], [0o755, 0o644]);
  assert.equal(await tightenTree(top, (p) => p === kept), 0, 'a second pass changes nothing');
});

test('tightenTree neither changes nor enters a file system mounted below, though keep does not name it', async () => {
  const top = made('mounts', 0o755, 'dir');
  const mnt = made('mounts/mnt', 0o755, 'dir');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'tmpfs', mnt]);
  try {
    writeFileSync(join(mnt, 'in-the-mount'), 'x');
    chmodSync(join(mnt, 'in-the-mount'), 0o644);
    made('mounts/beside', 0o644);
    assert.equal(await tightenTree(top, () => false), 2, 'the top and the file beside the mount');
    assert.deepEqual([mode(top), mode(join(top, 'beside'))], [0o700, 0o600]);
    assert.deepEqual([mode(mnt), mode(join(mnt, 'in-the-mount'))], [0o755, 0o644], 'the mount, as a rootfs or /dev/shm mounted after the walk began would be');
  } finally {
    execFileSync('umount', [mnt]);
  }
});
