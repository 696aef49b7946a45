import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextCheckPhase } from 'node:timers/promises';
import { isMounted, mountPoints, mountPointsUnder, unmountAll } from './mounts.js';

test('a tmpfs at a path with a space: seen by isMounted (through a symlink too) and mountPointsUnder, gone after umount', async () => {
  const base = mkdtempSync(join(tmpdir(), 'pc-mounts-'));
  const point = join(base, 'with space');
  mkdirSync(point);
  symlinkSync(base, join(base, 'link'));
  try {
    assert.equal(await isMounted(point), false);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', point]);
    assert.equal(await isMounted(point), true, 'mountinfo writes the space as \\040');
    assert.equal(await isMounted(join(base, 'link', 'with space')), true, 'a symlinked parent is resolved');
    assert.deepEqual(await mountPointsUnder(base), [point]);
    execFileSync('umount', [point]);
    assert.equal(await isMounted(point), false, 'a read after the umount does not see it');
  } finally {
    try {
      execFileSync('umount', [point], { stdio: 'ignore' });
    } catch {
      // unmounted by the test itself
    }
    rmSync(base, { recursive: true, force: true });
  }
});

test('callers in one turn share a read; a caller after the read began gets a new one', async () => {
  const first = mountPoints();
  assert.equal(mountPoints(), first, 'asked in the same turn: one read');
  await nextCheckPhase(); // the shared read has begun
  const later = mountPoints();
  assert.notEqual(later, first, 'asked after the read began: a read of its own, never an older one');
  assert.ok((await first).has('/'));
  assert.ok((await later).has('/'));
});

test('unmountAll: the mounted ones of a list in one run, the rest skipped; again, nothing to do', async () => {
  const base = mkdtempSync(join(tmpdir(), 'pc-mounts-'));
  const [a, b, never] = ['a', 'b', 'never'].map((n) => join(base, n)) as [string, string, string];
  for (const dir of [a, b, never]) mkdirSync(dir);
  try {
    for (const dir of [a, b]) execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', dir]);
    await unmountAll([a, never, b, join(base, 'absent')]);
    assert.deepEqual(await mountPointsUnder(base), []);
    await unmountAll([a, b]);
  } finally {
    for (const dir of [a, b]) {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        // unmounted by the test itself
      }
    }
    rmSync(base, { recursive: true, force: true });
  }
});
