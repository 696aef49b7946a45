/**
 * The bounded zstd stream: real zstd output round-trips (several frames, checksums, a skippable
 * frame, any chunking), a bomb of RLE blocks is produced only as fast as it is read, and frames that
 * are broken or ask for a huge window are refused before anything is decoded.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { unzstd, ZstdError } from './zstd-stream.js';

const zstd = (data: Buffer, ...args: string[]): Buffer => execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 64 << 20 });

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of source) parts.push(part);
  return Buffer.concat(parts);
}

const BLOCK = 128 * 1024;
/** A frame header: magic, no single segment / checksum / dictionary, then the window descriptor. */
const frameHeader = (windowDescriptor: number): Buffer => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor]);
/** `count` RLE blocks of 128 KiB of zeros, 4 bytes each: the bomb of issue 12, item 2. */
function rleBlocks(count: number): Buffer {
  const out = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) out.writeUIntLE((BLOCK << 3) | (1 << 1) | (i === count - 1 ? 1 : 0), i * 4, 3);
  return out;
}
const WINDOW_128K = 7 << 3; // 2^(10+7)

const isZstdError = (kind: ZstdError['kind'], re: RegExp) => (err: unknown) => err instanceof ZstdError && err.kind === kind && re.test(err.message);

test('real zstd output comes back byte for byte: two frames with checksums around a skippable one, in any chunking', async () => {
  const a = Buffer.concat([randomBytes(300_000), Buffer.alloc(500_000, 7)]);
  const b = Buffer.from('second frame\n'.repeat(10_000));
  const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18]), Buffer.from([0x10, 0, 0, 0]), randomBytes(16)]);
  const stream = Buffer.concat([zstd(a, '-C', '-19'), skippable, zstd(b, '-C', '-1')]);
  for (const size of [1, 7, 4096, stream.length]) {
    assert.deepEqual(await collect(unzstd(chunked(stream, size))), Buffer.concat([a, b]), `chunks of ${size}`);
  }
  assert.equal((await collect(unzstd(chunked(zstd(Buffer.alloc(0)), 3)))).length, 0, 'an empty frame');
});

test('a bomb of RLE blocks is decoded only as it is read: 8 KiB in one chunk, 256 MiB out', async () => {
  const bomb = Buffer.concat([frameHeader(WINDOW_128K), rleBlocks(2048)]);
  assert.ok(bomb.length < 8200);
  const before = process.memoryUsage().arrayBuffers;
  const out = unzstd(chunked(bomb, bomb.length));
  const first = await out.next();
  assert.equal(first.done, false);
  // fzstd given the whole chunk at once would have decoded all 256 MiB into its queue by now.
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 16 * 1024 * 1024, `${grown} bytes held after the first block`);
  await out.return(undefined);

  let total = 0;
  for await (const block of unzstd(chunked(Buffer.concat([frameHeader(WINDOW_128K), rleBlocks(64)]), 8192))) {
    assert.ok(block.every((x) => x === 0));
    total += block.byteLength;
  }
  assert.equal(total, 64 * BLOCK, 'every block, in full');
});

test('a frame asking for a window over the limit is refused before decoding', async () => {
  // 2^(10+20) = 1 GiB, a 13-byte frame; and a single-segment frame claiming 2 GiB of content.
  const bigWindow = Buffer.concat([frameHeader(20 << 3), rleBlocks(1)]);
  await assert.rejects(collect(unzstd(chunked(bigWindow, 64))), isZstdError('window', /needs a 1073741824-byte window, more than the 134217728 bytes/));
  const singleSegment = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0]), Buffer.from([0, 0, 0, 0x80]), rleBlocks(1)]);
  await assert.rejects(collect(unzstd(chunked(singleSegment, 64))), isZstdError('window', /needs a 2147483648-byte window/));
  const small = zstd(randomBytes(300_000)); // windows of a few hundred KiB
  await assert.rejects(collect(unzstd(chunked(small, 4096), 64 * 1024)), isZstdError('window', /more than the 65536 bytes/));
});

test('truncated, trailing garbage, a reserved block type and corrupt blocks are corrupt', async () => {
  const good = zstd(Buffer.from('hello zstd\n'.repeat(50_000)), '-C');
  await assert.rejects(collect(unzstd(chunked(good.subarray(0, good.length - 10), 100))), isZstdError('corrupt', /ends in the middle of a frame/));
  await assert.rejects(collect(unzstd(chunked(Buffer.concat([good, Buffer.from('garbage!')]), 100))), isZstdError('corrupt', /not a zstd frame/));
  const reserved = Buffer.concat([frameHeader(WINDOW_128K), Buffer.from([0x07, 0, 0])]);
  await assert.rejects(collect(unzstd(chunked(reserved, 100))), isZstdError('corrupt', /reserved type/));
  const flipped = Buffer.from(good);
  for (let i = 20; i < 60; i++) flipped[i] = (flipped[i] ?? 0) ^ 0x5a;
  await assert.rejects(collect(unzstd(chunked(flipped, 100))), (err: unknown) => err instanceof ZstdError && err.kind === 'corrupt');
  const skippableTooLong = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  await assert.rejects(collect(unzstd(chunked(skippableTooLong, 4))), isZstdError('corrupt', /ends in the middle/));
});
