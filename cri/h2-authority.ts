/**
 * Why this exists: grpc-go clients that dial a bare unix socket path (kubelet, crictl and critest up
 * to about 1.29) send that path as the HTTP/2 `:authority` ("/run/podchart/podchart.sock"). Node's
 * HTTP/2 layer (nghttp2) refuses an authority or host containing "/", spaces or nothing at all with
 * RST_STREAM PROTOCOL_ERROR before any JavaScript sees the stream, and Node has no option to relax
 * that. containerd and CRI-O accept any authority, and on a unix socket it means nothing.
 *
 * So the bytes a client sends pass through this rewriter before nghttp2 reads them. It follows the
 * client→server HTTP/2 framing (RFC 9113 §4), decodes every header block with the client's HPACK
 * state (RFC 7541, hpack.js), replaces an `:authority`/`host` that nghttp2 would refuse with
 * "localhost" (and a `grpc-timeout` past what grpc-js's timer holds with 24.8 days, see
 * clampGrpcTimeout), and re-encodes the block without touching the server's dynamic table (literals without
 * indexing only, hpack-literal.ts), so the two HPACK contexts can never disagree.
 * Every header block is decoded, rewritten or not, because each may change the client's dynamic
 * table. All other frames, and the server→client direction, pass through as they are.
 *
 * The frame parsing is written here rather than taken from a library: the only HTTP/2 framers on
 * npm are whole client/server stacks (node-http2, spdy), and this needs the 9-byte frame header.
 */
import hpack, { type HpackHeader } from 'hpack.js';
import { encodeLiteralBlock } from './hpack-literal.js';

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER_BYTES = 9;
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** Every HTTP/2 peer must accept frames of this size (SETTINGS_MAX_FRAME_SIZE's minimum). */
const MIN_MAX_FRAME_SIZE = 16_384;
/**
 * The HPACK table size a client may assume until told otherwise (RFC 7541 §4.2), and the
 * SETTINGS_HEADER_TABLE_SIZE that Node's HTTP/2 server advertises by default: the client's encoder
 * never uses a larger table, so a size update above it is a compression error.
 */
const HEADER_TABLE_BYTES = 4096;
/** Bound on one header block (HEADERS plus its CONTINUATIONs): grpc-js itself refuses beyond 8 KiB by default. */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;
/** Bound on one frame we hold whole (only HEADERS and CONTINUATION are held; the rest stream through). */
const MAX_HELD_FRAME_BYTES = 16 * 1024 * 1024;

export const SAFE_AUTHORITY = 'localhost';

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
/** The longest deadline grpc-js's own timer can hold, as a grpc-timeout value (2 147 483 s). */
export const MAX_GRPC_TIMEOUT = '2147483S';

/**
 * A `grpc-timeout` longer than 24.8 days, shortened to that; null when it fits (or is not one).
 * grpc-js arms its server-side deadline with a plain setTimeout, which turns anything longer into
 * 1 ms: a Go client's "2501999H" (crictl --timeout 1000h) would expire at once.
 */
export function clampGrpcTimeout(value: string): string | null {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return null;
  const ms = Number(m[1]) * (TIMEOUT_UNIT_MS[m[2] ?? 'S'] ?? 1);
  return ms > 2_147_483_000 ? MAX_GRPC_TIMEOUT : null;
}

/** What nghttp2 accepts in `:authority` and `host` (its check_authority: RFC 3986 authority characters). */
const NGHTTP2_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]+$/;

export function acceptableAuthority(value: string): boolean {
  return NGHTTP2_AUTHORITY.test(value);
}

/** One HTTP/2 frame: the 9-byte header (RFC 9113 §4.1), then the payload. */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer): Buffer[] {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return [header, payload];
}

/** A connection that broke HTTP/2 or HPACK: the caller closes it. */
export class Http2FramingError extends Error {
  override name = 'Http2FramingError';
}

type HpackDecoder = ReturnType<typeof hpack.decompressor.create>;

/** One whole header block through a decoder that keeps the sender's dynamic table. */
export function decodeHeaderBlock(decoder: HpackDecoder, bytes: Buffer): HpackHeader[] {
  let failure: Error | null = null;
  const onError = (err: Error): void => {
    failure = err;
  };
  decoder.once('error', onError);
  decoder.write(bytes);
  decoder.execute();
  decoder.removeListener('error', onError);
  const headers: HpackHeader[] = [];
  for (let h = decoder.read(); h !== null; h = decoder.read()) headers.push(h);
  if (failure) throw new Http2FramingError(`HPACK: ${(failure as Error).message}`);
  return headers;
}

interface PendingBlock {
  streamId: number;
  flags: number;
  /** The 5 priority bytes of the HEADERS frame, kept as sent. */
  priority: Buffer | null;
  fragments: Buffer[];
  bytes: number;
}

/**
 * Client→server bytes in, the same bytes out except for re-encoded header blocks. Not a stream: the
 * connection wrapper feeds it chunks and forwards what it returns, so it can be tested on bytes.
 */
export class AuthorityRewriter {
  private buffered: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  /** Bytes that are not HTTP/2 (an HTTP/1.1 request, garbage): forwarded untouched for nghttp2 to refuse. */
  private opaque = false;
  /** Payload bytes of a pass-through frame still to forward as they come. */
  private passThrough = 0;
  private block: PendingBlock | null = null;
  private readonly decoder = hpack.decompressor.create({ table: { maxSize: HEADER_TABLE_BYTES } });
  /** Header blocks whose authority or host was replaced (for logs and tests). */
  rewritten = 0;

  push(chunk: Buffer): Buffer[] {
    if (this.opaque) return [chunk];
    const out: Buffer[] = [];
    let data = this.buffered.length > 0 ? Buffer.concat([this.buffered, chunk]) : chunk;
    this.buffered = Buffer.alloc(0);

    if (!this.prefaceSeen) {
      const n = Math.min(data.length, PREFACE.length);
      if (!data.subarray(0, n).equals(PREFACE.subarray(0, n))) {
        this.opaque = true;
        return [data];
      }
      if (data.length < PREFACE.length) {
        this.buffered = data;
        return out;
      }
      out.push(data.subarray(0, PREFACE.length));
      data = data.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }

    while (data.length > 0) {
      if (this.passThrough > 0) {
        const n = Math.min(this.passThrough, data.length);
        out.push(data.subarray(0, n));
        data = data.subarray(n);
        this.passThrough -= n;
        continue;
      }
      if (data.length < FRAME_HEADER_BYTES) break;
      const length = data.readUIntBE(0, 3);
      const type = data[3] ?? 0;
      const flags = data[4] ?? 0;
      const streamId = data.readUInt32BE(5) & 0x7fff_ffff;
      const held = type === HEADERS || type === CONTINUATION;
      if (this.block && type !== CONTINUATION) {
        throw new Http2FramingError(`frame type ${type} inside the header block of stream ${this.block.streamId} (RFC 9113 §6.10)`);
      }
      if (!held) {
        out.push(data.subarray(0, FRAME_HEADER_BYTES));
        data = data.subarray(FRAME_HEADER_BYTES);
        this.passThrough = length;
        continue;
      }
      if (length > MAX_HELD_FRAME_BYTES) throw new Http2FramingError(`a ${length}-byte header frame is beyond any frame size limit`);
      if (data.length < FRAME_HEADER_BYTES + length) break;
      const payload = data.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      data = data.subarray(FRAME_HEADER_BYTES + length);
      const done = type === HEADERS ? this.onHeaders(streamId, flags, payload) : this.onContinuation(streamId, flags, payload);
      if (done) out.push(...done);
    }
    if (data.length > 0) this.buffered = Buffer.from(data);
    return out;
  }

  private onHeaders(streamId: number, flags: number, payload: Buffer): Buffer[] | null {
    let offset = 0;
    let padding = 0;
    if (flags & PADDED) {
      padding = payload[0] ?? 0;
      offset = 1;
    }
    let priority: Buffer | null = null;
    if (flags & PRIORITY) {
      priority = Buffer.from(payload.subarray(offset, offset + 5));
      offset += 5;
    }
    if (offset + padding > payload.length) throw new Http2FramingError(`HEADERS on stream ${streamId}: padding longer than the frame`);
    const fragment = payload.subarray(offset, payload.length - padding);
    this.block = { streamId, flags, priority, fragments: [Buffer.from(fragment)], bytes: fragment.length };
    return flags & END_HEADERS ? this.finishBlock() : null;
  }

  private onContinuation(streamId: number, flags: number, payload: Buffer): Buffer[] | null {
    const block = this.block;
    if (!block || block.streamId !== streamId) throw new Http2FramingError(`CONTINUATION on stream ${streamId} without its HEADERS`);
    block.fragments.push(Buffer.from(payload));
    block.bytes += payload.length;
    if (block.bytes > MAX_HEADER_BLOCK_BYTES) throw new Http2FramingError(`header block of stream ${streamId} exceeds ${MAX_HEADER_BLOCK_BYTES} bytes`);
    return flags & END_HEADERS ? this.finishBlock() : null;
  }

  /** Decodes the whole block, fixes the authority, and frames the re-encoded block again. */
  private finishBlock(): Buffer[] {
    const block = this.block;
    this.block = null;
    if (!block) return [];
    const headers = this.decode(Buffer.concat(block.fragments));
    const isRequest = headers.some((h) => h.name === ':method');
    let fixed = false;
    for (const h of headers) {
      if ((h.name === ':authority' || h.name === 'host') && !acceptableAuthority(h.value)) {
        h.value = SAFE_AUTHORITY;
        fixed = true;
      }
    }
    for (const h of headers) {
      const clamped = h.name === 'grpc-timeout' ? clampGrpcTimeout(h.value) : null;
      if (clamped !== null) {
        h.value = clamped;
        fixed = true;
      }
    }
    if (isRequest && !headers.some((h) => h.name === ':authority' || h.name === 'host')) {
      // Pseudo-headers come first (RFC 9113 §8.3): the new one goes right after :method.
      headers.splice(headers.findIndex((h) => h.name === ':method') + 1, 0, { name: ':authority', value: SAFE_AUTHORITY });
      fixed = true;
    }
    if (fixed) this.rewritten++;
    const encoded = this.encode(headers);
    return this.frame(block, encoded);
  }

  private decode(bytes: Buffer): HpackHeader[] {
    return decodeHeaderBlock(this.decoder, bytes);
  }

  private encode(headers: HpackHeader[]): Buffer {
    // Literals without indexing keep the server's dynamic table empty; no Huffman on a local socket.
    return encodeLiteralBlock(headers);
  }

  /** One HEADERS frame (no padding), then CONTINUATIONs, each within the minimum frame size. */
  private frame(block: PendingBlock, encoded: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    const prefix = block.priority ?? Buffer.alloc(0);
    const firstRoom = MIN_MAX_FRAME_SIZE - prefix.length;
    let rest = encoded;
    let first = true;
    do {
      const room = first ? firstRoom : MIN_MAX_FRAME_SIZE;
      const piece = rest.subarray(0, room);
      rest = rest.subarray(piece.length);
      const last = rest.length === 0;
      const flags = first
        ? (block.flags & (END_STREAM | PRIORITY)) | (last ? END_HEADERS : 0)
        : last ? END_HEADERS : 0;
      const body = first ? Buffer.concat([prefix, piece]) : piece;
      frames.push(...encodeFrame(first ? HEADERS : CONTINUATION, flags, block.streamId, body));
      first = false;
    } while (rest.length > 0);
    return frames;
  }
}
