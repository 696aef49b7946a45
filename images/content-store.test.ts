import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoss, EffectFailed, InvalidArgument, NotFound } from '../errors/catalogue.js';
import { ContentStore } from './content-store.js';

let root: string;
let store: ContentStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'podchart-cs-'));
  store = new ContentStore(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* chunks(...parts: Buffer[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

/** A body that fails the test if anyone reads it. */
function untouchable(): AsyncIterable<Uint8Array> & { read: boolean } {
  const body = {
    read: false,
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      return {
        next: () => {
          body.read = true;
          return Promise.reject(new Error('this body must not be read'));
        },
      };
    },
  };
  return body;
}

async function ingestFiles(): Promise<string[]> {
  return readdir(join(root, 'ingest')).catch(() => []);
}

test('ingest stores a verified blob, reports progress, and read/readJson/list/has see it', async () => {
  const data = Buffer.from(JSON.stringify({ hello: 'world' }));
  const digest = sha(data);
  const progress: number[] = [];
  await store.ingest(digest, chunks(data.subarray(0, 5), data.subarray(5)), data.length, (n) => progress.push(n));
  assert.deepEqual(progress, [5, data.length]);
  assert.equal(await store.has(digest), true);
  assert.equal(store.path(digest), join(root, 'blobs', 'sha256', digest.slice(7)));
  assert.deepEqual(await readFile(store.path(digest)), data);
  assert.deepEqual(await store.read(digest), data);
  assert.deepEqual(await store.readJson<{ hello: string }>(digest), { hello: 'world' });
  assert.deepEqual(await store.list(), [digest]);
  assert.deepEqual(await ingestFiles(), [], 'the temp file was renamed away');
});

test('a digest mismatch throws DataLoss (DATA_LOSS) naming both digests and leaves no file', async () => {
  const data = Buffer.from('the real bytes');
  const digest = sha(Buffer.from('other bytes'));
  await assert.rejects(store.ingest(digest, chunks(data)), (err: unknown) => {
    assert.ok(err instanceof DataLoss);
    assert.equal(err.code, 15);
    assert.equal(err.message, `digest mismatch for ${digest}: got ${sha(data)}`);
    return true;
  });
  assert.equal(await store.has(digest), false);
  assert.deepEqual(await ingestFiles(), []);
  assert.deepEqual(await store.list(), []);
});

test('a size mismatch (short or long) throws EffectFailed and leaves no file', async () => {
  const data = Buffer.from('0123456789');
  const digest = sha(data);
  await assert.rejects(store.ingest(digest, chunks(data), 11), /size mismatch .*expected 11 bytes, got 10/);
  await assert.rejects(store.ingest(digest, chunks(data), 4), /size mismatch .*expected 4 bytes, got more/);
  assert.equal(await store.has(digest), false);
  assert.deepEqual(await ingestFiles(), []);
});

test('a body that fails midway leaves no file', async () => {
  async function* broken(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('part');
    throw new Error('connection reset');
  }
  const digest = sha(Buffer.from('part and more'));
  await assert.rejects(store.ingest(digest, broken()), /connection reset/);
  assert.equal(await store.has(digest), false);
  assert.deepEqual(await ingestFiles(), []);
});

test('an existing blob is not downloaded again', async () => {
  const data = Buffer.from('present');
  await store.ingest(sha(data), chunks(data));
  const body = untouchable();
  await store.ingest(sha(data), body, data.length);
  assert.equal(body.read, false);
});

test('concurrent ingests of one digest share one write', async () => {
  const data = Buffer.from('shared blob');
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const firstStarted = new Promise<void>((resolve) => (started = resolve));
  async function* slow(): AsyncGenerator<Uint8Array> {
    started();
    await gate;
    yield data;
  }
  const first = store.ingest(sha(data), slow(), data.length);
  await firstStarted;
  const body = untouchable();
  const second = store.ingest(sha(data), body, data.length);
  release();
  await Promise.all([first, second]);
  assert.equal(body.read, false, 'the second caller waited for the first write');
  assert.deepEqual(await store.read(sha(data)), data);
  // Once done, a later ingest of a different digest is not affected by the finished one.
  const other = Buffer.from('other');
  await store.ingest(sha(other), chunks(other));
  assert.deepEqual(await store.list(), [sha(data), sha(other)].sort());
});

test('only sha256 digests are accepted', async () => {
  const bad = ['sha512:' + 'a'.repeat(128), 'sha256:abc', 'sha256:' + 'A'.repeat(64), 'nothex', ''];
  for (const digest of bad) {
    assert.throws(() => store.path(digest), InvalidArgument, digest);
    await assert.rejects(store.ingest(digest, chunks(Buffer.from('x'))), InvalidArgument, digest);
    await assert.rejects(store.has(digest), InvalidArgument, digest);
  }
  assert.throws(() => store.path('sha512:' + 'a'.repeat(128)), /only sha256/);
});

test('read of a missing blob is NotFound; delete is idempotent; readJson rejects bad JSON', async () => {
  const data = Buffer.from('not json');
  const missing = sha(Buffer.from('missing'));
  await assert.rejects(store.read(missing), NotFound);
  await store.ingest(sha(data), chunks(data));
  await assert.rejects(store.readJson(sha(data)), (err: unknown) => err instanceof EffectFailed && /not valid JSON/.test(err.message));
  await store.delete(sha(data));
  await store.delete(sha(data));
  assert.equal(await store.has(sha(data)), false);
  assert.deepEqual(await store.list(), []);
});

test('usage counts bytes and inodes; cleanIngest removes leftovers of a crash', async () => {
  assert.deepEqual(await store.usage(), { bytes: 0, inodes: 0 }, 'an empty root');
  const data = Buffer.alloc(1000, 7);
  await store.ingest(sha(data), chunks(data));
  const after = await store.usage();
  // blobs/, blobs/sha256/, ingest/ and the blob itself.
  assert.equal(after.inodes, 4);
  assert.ok(after.bytes >= 1000, `bytes ${after.bytes}`);

  await mkdir(join(root, 'ingest'), { recursive: true });
  await writeFile(join(root, 'ingest', 'deadbeef.0123'), 'half a download');
  assert.equal(await store.cleanIngest(), 1);
  assert.deepEqual(await ingestFiles(), []);
  assert.equal(await store.has(sha(data)), true, 'complete blobs stay');
});
