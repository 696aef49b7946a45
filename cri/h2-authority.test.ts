/**
 * The authority rewriter on bytes: header blocks encoded by a real HPACK encoder (hpack.js, with
 * its dynamic table in use) go in, split anywhere; what comes out must decode, with a fresh decoder
 * (the server's), to the same headers with only an unacceptable authority replaced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import hpack, { type HpackHeader } from 'hpack.js';
import { AuthorityRewriter, Http2FramingError, PREFACE, acceptableAuthority, clampGrpcTimeout, encodeFrame, MAX_GRPC_TIMEOUT } from './h2-authority.js';

const HEADERS = 0x1;
const DATA = 0x0;
const CONTINUATION = 0x9;

const frame = (type: number, flags: number, streamId: number, payload: Buffer): Buffer => Buffer.concat(encodeFrame(type, flags, streamId, payload));

/** A client's HPACK encoder: indexes everything it can, like grpc-go's and nghttp2's. */
function clientEncoder(tableSize = 4096) {
  const c = hpack.compressor.create({ table: { maxSize: tableSize } });
  return (headers: [string, string][]): Buffer => {
    c.write(headers.map(([name, value]) => ({ name, value })));
    const parts: Buffer[] = [];
    for (let b = c.read(); b !== null; b = c.read()) parts.push(b);
    return Buffer.concat(parts);
  };
}

interface Frame { type: number; flags: number; streamId: number; payload: Buffer }

function parseFrames(bytes: Buffer): Frame[] {
  assert.ok(bytes.subarray(0, PREFACE.length).equals(PREFACE), 'the preface passes first');
  const frames: Frame[] = [];
  let rest = bytes.subarray(PREFACE.length);
  while (rest.length > 0) {
    const length = rest.readUIntBE(0, 3);
    frames.push({ type: rest[3] ?? -1, flags: rest[4] ?? -1, streamId: rest.readUInt32BE(5), payload: rest.subarray(9, 9 + length) });
    rest = rest.subarray(9 + length);
  }
  return frames;
}

/** The server's view: header blocks reassembled and decoded with one fresh decoder, in order. */
function serverDecode(frames: Frame[]): { streamId: number; headers: [string, string][] }[] {
  const d = hpack.decompressor.create({ table: { maxSize: 4096 } });
  const blocks: { streamId: number; headers: [string, string][] }[] = [];
  let pending: Buffer[] = [];
  for (const f of frames) {
    if (f.type !== HEADERS && f.type !== CONTINUATION) continue;
    let payload = f.payload;
    if (f.type === HEADERS) {
      assert.equal(f.flags & 0x8, 0, 'the rewriter sends no padding');
      if (f.flags & 0x20) payload = payload.subarray(5);
    }
    pending.push(payload);
    if (f.flags & 0x4) {
      d.write(Buffer.concat(pending));
      d.execute();
      const headers: [string, string][] = [];
      for (let h: HpackHeader | null = d.read(); h !== null; h = d.read()) headers.push([h.name, h.value]);
      blocks.push({ streamId: f.streamId, headers });
      pending = [];
    }
  }
  return blocks;
}

function feed(rewriter: AuthorityRewriter, bytes: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b)) {
    out.push(...rewriter.push(bytes.subarray(at, cut)));
    at = cut;
  }
  out.push(...rewriter.push(bytes.subarray(at)));
  return Buffer.concat(out);
}

const request = (authority: string, seq: number): [string, string][] => [
  [':method', 'POST'], [':scheme', 'http'], [':path', '/runtime.v1.RuntimeService/Version'], [':authority', authority],
  ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.51.0'], ['te', 'trailers'], ['grpc-timeout', `${seq}m`],
];

test('what nghttp2 refuses is what gets replaced', () => {
  for (const ok of ['localhost', 'localhost:1234', '127.0.0.1', '[::1]:80', 'user@host', 'a-b.c_d~e']) assert.ok(acceptableAuthority(ok), ok);
  for (const bad of ['/run/podchart/podchart.sock', '', 'a b', 'a\u0000b', 'host/']) assert.ok(!acceptableAuthority(bad), JSON.stringify(bad));
});

test('a socket-path authority becomes localhost; everything else arrives as sent, across HPACK table reuse and eviction', () => {
  const encode = clientEncoder();
  const streams: [string, string][][] = [];
  const parts: Buffer[] = [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0))];
  // 300 requests with a 200-byte header that changes each time: the 4 KiB table evicts constantly.
  for (let i = 0; i < 300; i++) {
    const headers = [...request(i % 3 === 0 ? 'localhost' : '/run/podchart/podchart.sock', i), ['x-trace', `${i}:${'t'.repeat(200)}`] as [string, string]];
    streams.push(headers);
    const id = 2 * i + 1;
    parts.push(frame(HEADERS, 0x4, id, encode(headers)), frame(DATA, 0x1, id, Buffer.from([0, 0, 0, 0, 0])));
  }
  const rewriter = new AuthorityRewriter();
  const out = feed(rewriter, Buffer.concat(parts), []);
  const blocks = serverDecode(parseFrames(out));
  assert.equal(blocks.length, 300);
  blocks.forEach((b, i) => {
    const expected = streams[i]?.map(([n, v]): [string, string] => [n, n === ':authority' ? 'localhost' : v]);
    assert.deepEqual(b.headers, expected, `stream ${b.streamId}`);
  });
  assert.equal(rewriter.rewritten, 200);
  const data = parseFrames(out).filter((f) => f.type === DATA);
  assert.equal(data.length, 300, 'DATA frames pass through');
});

test('a request without an authority gets one; trailers get none', () => {
  const encode = clientEncoder();
  const noAuthority = request('x', 1).filter(([n]) => n !== ':authority');
  const bytes = Buffer.concat([PREFACE, frame(HEADERS, 0x4, 1, encode(noAuthority)), frame(HEADERS, 0x5, 1, encode([['grpc-status', '0']]))]);
  const blocks = serverDecode(parseFrames(feed(new AuthorityRewriter(), bytes, [])));
  assert.deepEqual(blocks[0]?.headers.slice(0, 2), [[':method', 'POST'], [':authority', 'localhost']]);
  assert.deepEqual(blocks[1]?.headers, [['grpc-status', '0']]);
});

test('padding, priority and CONTINUATION frames: the block is reassembled and framed again', () => {
  const encode = clientEncoder();
  const headers = [...request('/a/b.sock', 1), ['x-big', 'v'.repeat(40_000)] as [string, string]];
  const block = encode(headers);
  const padLength = 7;
  const priority = Buffer.from([0x80, 0, 0, 0, 16]);
  const first = Buffer.concat([Buffer.from([padLength]), priority, block.subarray(0, 1000), Buffer.alloc(padLength)]);
  const bytes = Buffer.concat([
    PREFACE,
    frame(HEADERS, 0x8 | 0x20 | 0x1, 5, first),
    frame(CONTINUATION, 0, 5, block.subarray(1000, 20_000)),
    frame(CONTINUATION, 0x4, 5, block.subarray(20_000)),
  ]);
  const frames = parseFrames(feed(new AuthorityRewriter(), bytes, [3, 30, 1100, 25_000]));
  assert.ok(frames.every((f) => f.payload.length <= 16_384), 'every frame fits the minimum max frame size');
  assert.equal((frames[0]?.flags ?? 0) & 0x21, 0x21, 'END_STREAM and PRIORITY kept');
  assert.deepEqual(frames[0]?.payload.subarray(0, 5), priority);
  const [decoded] = serverDecode(frames);
  assert.deepEqual(decoded?.headers, headers.map(([n, v]): [string, string] => [n, n === ':authority' ? 'localhost' : v]));
});

test('any split of the byte stream gives the same result (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ authority: fc.constantFrom('localhost', '/run/x.sock', 'a b', 'node:1'), extra: fc.string({ maxLength: 300 }) }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.nat(20_000), { maxLength: 30 }),
      (reqs, cuts) => {
        const encode = clientEncoder(512);
        const parts: Buffer[] = [PREFACE];
        const sent = reqs.map((r, i) => {
          const headers = [...request(r.authority, i), ['x-extra', Buffer.from(r.extra).toString('latin1')] as [string, string]];
          parts.push(frame(HEADERS, 0x5, 2 * i + 1, encode(headers)));
          return headers;
        });
        const bytes = Buffer.concat(parts);
        // (A client table smaller than the decoder's is compatible: it only evicts sooner.)
        const blocks = serverDecode(parseFrames(feed(new AuthorityRewriter(), bytes, cuts)));
        assert.deepEqual(blocks.map((b) => b.headers), sent.map((h) => h.map(([n, v]): [string, string] => [n, n === ':authority' && !acceptableAuthority(v) ? 'localhost' : v])));
      },
    ),
    { numRuns: 200 },
  );
});

test('not HTTP/2 at all: the bytes pass untouched for nghttp2 to refuse', () => {
  const http1 = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const rewriter = new AuthorityRewriter();
  assert.deepEqual(Buffer.concat(rewriter.push(http1)), http1);
  assert.deepEqual(Buffer.concat(rewriter.push(Buffer.from('more'))), Buffer.from('more'));
});

test('broken framing or HPACK is a framing error, never a crash', () => {
  const bad = [
    frame(HEADERS, 0x4, 1, Buffer.from([0xff, 0xff, 0xff, 0x7f])), // index far beyond both tables
    frame(HEADERS, 0x8 | 0x4, 1, Buffer.from([200, 1, 2])), // padding longer than the frame
    Buffer.concat([frame(HEADERS, 0, 1, Buffer.from([0x82])), frame(DATA, 0, 1, Buffer.alloc(1))]), // DATA inside a header block
    frame(CONTINUATION, 0x4, 3, Buffer.from([0x82])), // CONTINUATION with no HEADERS
  ];
  for (const b of bad) {
    assert.throws(() => new AuthorityRewriter().push(Buffer.concat([PREFACE, b])), Http2FramingError);
  }
});

test('a grpc-timeout past 24.8 days is shortened to what a timer holds; others are left as sent', () => {
  assert.equal(clampGrpcTimeout('2501999H'), MAX_GRPC_TIMEOUT); // Go's encoding of 1000h... and more
  assert.equal(clampGrpcTimeout('99999999S'), MAX_GRPC_TIMEOUT);
  assert.equal(clampGrpcTimeout('2147484S'), MAX_GRPC_TIMEOUT);
  for (const fits of ['2147483S', '30S', '120000m', '596H', '99999999n', 'junk', '']) assert.equal(clampGrpcTimeout(fits), null, fits);
});
