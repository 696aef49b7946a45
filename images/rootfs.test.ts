/**
 * Overlay rootfs from real layers (unpacked by the layer store): whiteouts and opaque dirs in the
 * merged view, the writable layer, read-only and layerless images, option strings past one page,
 * unmount/remove, and a runnable busybox rootfs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tarOf, type Spec } from './tar-fixture.js';
import { isMounted } from '../host/mounts.js';
import { run } from '../host/exec.js';
import { LayerStore } from './layer-store.js';
import { MOUNT_OPTIONS_LIMIT, mountRootfs, mountsUnder, removeRootfs, rootfsPaths, unmountRootfs, writableLayerUsage } from './rootfs.js';

/** Entries for host files as a distro image holds them: every symlink on the way kept as a symlink. */
async function hostTree(paths: string[]): Promise<Spec[]> {
  const specs = new Map<string, Spec>();
  const add = async (path: string): Promise<void> => {
    const parts = path.split('/').filter(Boolean);
    let cur = '';
    for (const [i, part] of parts.entries()) {
      cur = `${cur}/${part}`;
      const st = await lstat(cur);
      if (st.isSymbolicLink()) {
        const target = await readlink(cur);
        specs.set(cur, { name: cur.slice(1), type: 'symlink', linkname: target });
        return add(join(resolve(dirname(cur), target), ...parts.slice(i + 1)));
      }
      if (st.isDirectory()) {
        if (!specs.has(cur)) specs.set(cur, { name: `${cur.slice(1)}/`, type: 'directory', mode: st.mode & 0o7777 });
      } else specs.set(cur, { name: cur.slice(1), mode: st.mode & 0o7777, body: await readFile(cur) });
    }
  };
  for (const p of paths) await add(p);
  return [...specs.values()];
}

/** How many mounts sit on `path` (stacked mounts count each). */
function mountCount(path: string): number {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.split(' ')[4] === path).length;
}

describe('rootfs', () => {
  let work = '';
  let store: LayerStore;
  let n = 0;
  const containerDir = () => join(work, 'containers', `c${++n}`);

  async function layer(specs: Spec[]): Promise<string> {
    const tar = await tarOf(specs);
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    return store.ensure(diffId, async () =>
      (async function* () {
        yield tar;
      })(),
    );
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'podchart-rootfs-'));
    store = new LayerStore(join(work, 'layers'));
  });
  after(async () => {
    // Unmount first, deepest first: rm -rf would otherwise reach into the mounted layers.
    for (const point of (await mountsUnder(work)).reverse()) execFileSync('umount', [point]);
    await rm(work, { recursive: true, force: true });
  });

  test('two layers: a whiteout hides the lower file, an opaque dir shows only the upper entries', async () => {
    const lower = await layer([
      { name: 'etc/keep', body: 'k' },
      { name: 'etc/gone', body: 'g' },
      { name: 'opq/a', body: 'a' },
      { name: 'opq/sub/b', body: 'b' },
      { name: 'shared', body: 'lower' },
    ]);
    const upper = await layer([
      { name: 'etc/.wh.gone' },
      { name: 'opq/', type: 'directory', mode: 0o755 },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/fresh', body: 'f' },
      { name: 'shared', body: 'upper' },
      { name: 'new', body: 'n' },
    ]);
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: [upper, lower], containerDir: dir });
    assert.equal(merged, rootfsPaths(dir).merged);
    assert.equal(await isMounted(merged), true);
    assert.deepEqual((await readdir(join(merged, 'etc'))).sort(), ['keep']);
    assert.equal(existsSync(join(merged, 'etc/gone')), false);
    assert.deepEqual(await readdir(join(merged, 'opq')), ['fresh']);
    assert.equal(await readFile(join(merged, 'shared'), 'utf8'), 'upper');
    assert.deepEqual((await readdir(merged)).sort(), ['etc', 'new', 'opq', 'shared']);

    assert.equal(await mountRootfs({ lowerDirs: [upper, lower], containerDir: dir }), merged, 'idempotent');
    assert.equal(mountCount(merged), 1, 'mounted once');

    const before = await writableLayerUsage(dir);
    await writeFile(join(merged, 'data'), Buffer.alloc(1 << 20, 1));
    const grown = await writableLayerUsage(dir);
    assert.ok(grown.bytes >= before.bytes + (1 << 20), `${before.bytes} -> ${grown.bytes}`);
    assert.equal(grown.inodes, before.inodes + 1);
    assert.ok(existsSync(join(rootfsPaths(dir).upper, 'data')));
    assert.equal(existsSync(join(upper, 'data')), false, 'layers stay untouched');

    await unmountRootfs(dir);
    assert.equal(await isMounted(merged), false);
    assert.equal(mountCount(merged), 0);
    assert.deepEqual(await readdir(merged), []);
    await unmountRootfs(dir); // idempotent
    await removeRootfs(dir);
    assert.equal(existsSync(dir), false);
    await removeRootfs(dir); // idempotent
    assert.ok(existsSync(join(lower, 'etc/gone')), 'removing a rootfs leaves its layers');
  });

  test('removeRootfs unmounts a mounted rootfs before deleting it', async () => {
    const lower = await layer([{ name: 'only', body: 'o' }]);
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: [lower], containerDir: dir });
    assert.deepEqual(await readdir(merged), ['only'], 'a single layer works');
    await removeRootfs(dir);
    assert.equal(mountCount(merged), 0);
    assert.equal(existsSync(dir), false);
    assert.equal(await readFile(join(lower, 'only'), 'utf8'), 'o', 'the layer survived');
  });

  test('removeRootfs refuses while something else is mounted inside, deleting nothing through it', async () => {
    const lower = await layer([{ name: 'l', body: 'l' }]);
    const dir = containerDir();
    await mountRootfs({ lowerDirs: [lower], containerDir: dir });
    const precious = join(work, 'precious');
    await mkdir(precious);
    await writeFile(join(precious, 'keep'), 'k');
    await mkdir(join(dir, 'bind'));
    execFileSync('mount', ['--bind', precious, join(dir, 'bind')]);
    await assert.rejects(removeRootfs(dir), /still mounted inside/);
    assert.equal(await readFile(join(precious, 'keep'), 'utf8'), 'k');
    execFileSync('umount', [join(dir, 'bind')]);
    await removeRootfs(dir);
    assert.equal(existsSync(dir), false);
    assert.equal(await readFile(join(precious, 'keep'), 'utf8'), 'k');
  });

  test('an image without layers mounts over an empty lower dir', async () => {
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: [], containerDir: dir });
    assert.equal(await isMounted(merged), true);
    assert.deepEqual(await readdir(merged), []);
    await writeFile(join(merged, 'x'), 'x');
    assert.ok(existsSync(join(rootfsPaths(dir).upper, 'x')));
    await removeRootfs(dir);
    assert.equal(existsSync(dir), false);
  });

  test('readonly mounts refuse writes', async () => {
    const lower = await layer([{ name: 'ro', body: 'r' }]);
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: [lower], containerDir: dir, readonly: true });
    assert.equal(await readFile(join(merged, 'ro'), 'utf8'), 'r');
    await assert.rejects(writeFile(join(merged, 'w'), 'w'), { code: 'EROFS' });
    await removeRootfs(dir);
  });

  test('lower dirs past one page of options mount through relative paths', async () => {
    const base = join(work, 'many-layers-under-a-rather-long-directory-name');
    const lowers: string[] = [];
    for (let i = 0; i < 150; i++) {
      const dir = join(base, createHash('sha256').update(String(i)).digest('hex').slice(0, 12), 'fs');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `f${i}`), String(i));
      await writeFile(join(dir, 'same'), String(i));
      lowers.push(dir);
    }
    assert.ok(lowers.join(':').length > MOUNT_OPTIONS_LIMIT, 'absolute paths would not fit');
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: lowers, containerDir: dir });
    assert.equal((await readdir(merged)).length, 151);
    assert.equal(await readFile(join(merged, 'f149'), 'utf8'), '149');
    assert.equal(await readFile(join(merged, 'same'), 'utf8'), '0', 'the first lower dir is the top-most');
    await removeRootfs(dir);
    assert.equal(mountCount(merged), 0);
  });

  test('paths overlay cannot take are refused before mounting', async () => {
    const dir = containerDir();
    await assert.rejects(mountRootfs({ lowerDirs: [join(work, 'a:b')], containerDir: dir }), /must be absolute, without/);
    await assert.rejects(mountRootfs({ lowerDirs: ['relative/layer'], containerDir: dir }), /must be absolute, without/);
    assert.equal(await isMounted(rootfsPaths(dir).merged), false);
  });

  test('a rootfs of the host busybox and its libraries runs under chroot', async () => {
    const ldd = execFileSync('ldd', ['/usr/bin/busybox'], { encoding: 'utf8' });
    const libs = [...ldd.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1] ?? '');
    assert.ok(libs.length > 0, `ldd found no libraries:\n${ldd}`);
    const lower = await layer(await hostTree(['/bin/busybox', ...libs]));
    const upper = await layer([{ name: 'etc/motd', body: 'hello from the upper layer\n' }]);
    const dir = containerDir();
    const merged = await mountRootfs({ lowerDirs: [upper, lower], containerDir: dir });
    const echo = await run('chroot', [merged, '/bin/busybox', 'echo', 'hi']);
    assert.equal(echo.stdout, 'hi');
    const cat = await run('chroot', [merged, '/bin/busybox', 'cat', '/etc/motd']);
    assert.equal(cat.stdout, 'hello from the upper layer');
    await run('chroot', [merged, '/bin/busybox', 'touch', '/made-inside']);
    assert.ok(existsSync(join(rootfsPaths(dir).upper, 'made-inside')));
    await removeRootfs(dir);
    assert.equal(existsSync(dir), false);
  });
});
