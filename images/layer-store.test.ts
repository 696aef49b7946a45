/** LayerStore on a temp root: unpack once per diffId, verification, short names, removal, usage. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { DataLoss, InvalidArgument, NotFound } from '../errors/catalogue.js';
import { LayerStore } from './layer-store.js';

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  const out = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of p) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const [name, body] of Object.entries(files)) p.entry({ name, mode: 0o644 }, body);
  p.finalize();
  return out;
}

function diffIdOf(tar: Buffer): string {
  return `sha256:${createHash('sha256').update(tar).digest('hex')}`;
}

/** An `open` for ensure() that counts its calls and serves the layer gzipped, as a registry would. */
function opener(tar: Buffer): { open: () => Promise<AsyncIterable<Uint8Array>>; calls: () => number } {
  let calls = 0;
  return {
    open: async () => {
      calls++;
      const gz = gzipSync(tar);
      return (async function* () {
        yield gz.subarray(0, 100);
        yield gz.subarray(100);
      })();
    },
    calls: () => calls,
  };
}

describe('LayerStore', () => {
  let work = '';
  let n = 0;
  const freshStore = () => new LayerStore(join(work, `store-${++n}`));

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'podchart-layers-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('ensure unpacks into <root>/<12 hex>/fs, and has/dir/list see it', async () => {
    const store = freshStore();
    const tar = await tarOf({ 'etc/os-release': 'ID=test\n' });
    const diffId = diffIdOf(tar);
    assert.equal(await store.has(diffId), false);
    await assert.rejects(store.dir(diffId), NotFound);
    const dir = await store.ensure(diffId, opener(tar).open);
    assert.equal(dir, join(store.root, diffId.slice(7, 19), 'fs'));
    assert.equal(await readFile(join(dir, 'etc/os-release'), 'utf8'), 'ID=test\n');
    assert.equal(await readFile(join(dirname(dir), 'diffid'), 'utf8'), `${diffId}\n`);
    assert.equal(await store.has(diffId), true);
    assert.equal(await store.dir(diffId), dir);
    assert.deepEqual(await store.list(), [diffId]);
    assert.deepEqual(await readdir(store.root), [basename(dirname(dir))], 'no stage dir left');
  });

  test('concurrent ensure of one diffId unpacks once; a later ensure does not open at all', async () => {
    const store = freshStore();
    const tar = await tarOf({ a: 'a', 'b/c': 'c' });
    const diffId = diffIdOf(tar);
    const o = opener(tar);
    const dirs = await Promise.all(Array.from({ length: 6 }, () => store.ensure(diffId, o.open)));
    assert.equal(o.calls(), 1);
    assert.equal(new Set(dirs).size, 1);
    assert.equal(await store.ensure(diffId, o.open), dirs[0]);
    assert.equal(o.calls(), 1);
  });

  test('content that does not match the diffId is refused and leaves nothing', async () => {
    const store = freshStore();
    const tar = await tarOf({ a: 'a' });
    const wrong = diffIdOf(await tarOf({ a: 'b' }));
    await assert.rejects(store.ensure(wrong, opener(tar).open), (err: unknown) => {
      assert.ok(err instanceof DataLoss, 'corrupt content is DATA_LOSS');
      assert.match(err.message, new RegExp(`expected ${wrong}, got ${diffIdOf(tar)}`));
      return true;
    });
    assert.equal(await store.has(wrong), false);
    assert.deepEqual(await readdir(store.root), []);
    // A failed unpack is not cached: the right content still goes in afterwards.
    assert.ok(existsSync(await store.ensure(diffIdOf(tar), opener(tar).open)));
  });

  test('a failing open() is reported and leaves nothing', async () => {
    const store = freshStore();
    const diffId = diffIdOf(await tarOf({ a: 'a' }));
    await assert.rejects(
      store.ensure(diffId, async () => {
        throw new Error('registry down');
      }),
      /registry down/,
    );
    assert.deepEqual(await readdir(store.root), []);
  });

  test('a malformed diffId is an InvalidArgument', async () => {
    const store = freshStore();
    await assert.rejects(store.ensure('sha256:abc', opener(Buffer.alloc(0)).open), InvalidArgument);
    await assert.rejects(store.has('../etc'), InvalidArgument);
  });

  test('a short name taken by another diffId moves the layer to a longer one', async () => {
    const store = freshStore();
    const tar = await tarOf({ x: 'x' });
    const diffId = diffIdOf(tar);
    const hex = diffId.slice(7);
    const squatter = `sha256:${hex.slice(0, 12)}${'0'.repeat(52)}`;
    assert.notEqual(squatter, diffId);
    await mkdir(join(store.root, hex.slice(0, 12)), { recursive: true });
    await writeFile(join(store.root, hex.slice(0, 12), 'diffid'), `${squatter}\n`);
    const dir = await store.ensure(diffId, opener(tar).open);
    assert.equal(dir, join(store.root, hex.slice(0, 16), 'fs'));
    assert.equal(await store.dir(diffId), dir);
    assert.deepEqual((await store.list()).sort(), [diffId, squatter].sort());
    // With the squatter gone, the layer is still found at its longer name (no re-unpack).
    await store.remove(squatter);
    const o = opener(tar);
    assert.equal(await store.ensure(diffId, o.open), dir);
    assert.equal(o.calls(), 0);
  });

  test('remove deletes the layer and is idempotent; usage counts what is there', async () => {
    const store = freshStore();
    const empty = await store.usage();
    assert.deepEqual(empty, { bytes: 0, inodes: 0 });
    const tar = await tarOf({ big: 'z'.repeat(200_000), small: 's' });
    const diffId = diffIdOf(tar);
    const dir = await store.ensure(diffId, opener(tar).open);
    const used = await store.usage();
    assert.ok(used.bytes >= 200_000, `bytes ${used.bytes}`);
    assert.equal(used.inodes, 6, 'root, <short>, diffid, fs, big, small');
    await store.remove(diffId);
    assert.equal(existsSync(dirname(dir)), false);
    assert.equal(await store.has(diffId), false);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(await readdir(store.root), []);
    await store.remove(diffId);
  });

  test('sweep removes stage and trash dirs a crash left', async () => {
    const store = freshStore();
    const tar = await tarOf({ k: 'k' });
    const dir = await store.ensure(diffIdOf(tar), opener(tar).open);
    await mkdir(join(store.root, '.stage-dead/fs.tmp-1'), { recursive: true });
    await mkdir(join(store.root, '.trash-dead'));
    assert.equal(await store.sweep(), 2);
    assert.deepEqual(await readdir(store.root), [basename(dirname(dir))]);
  });
});
