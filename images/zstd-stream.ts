/**
 * zstd decompression in bounded memory. Node 20's zlib has no zstd, so fzstd decodes; but its
 * Decompress decodes every complete block of a `push` at once, and a 4-byte RLE block expands to
 * 128 KiB: 8 KiB pushed can come out as 256 MiB, all queued before anyone reads it (issue 12,
 * item 2). It also allocates (and rewrites) the window a frame header asks for, up to 2 GiB.
 *
 * So the input is split here, along the frame format (RFC 8878, section 3.1), into frame headers,
 * block headers and block contents, and fzstd gets one piece per push: a push then completes at
 * most the few blocks that fit in the 18 bytes fzstd buffers before a frame starts, and each
 * push's output is handed downstream, which pulls (backpressure) before the next piece is fed.
 * A frame whose window exceeds `maxWindow` is refused before fzstd allocates it.
 */

/** zstd's own default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 2^27): larger windows need `zstd --memory` too. */
export const MAX_ZSTD_WINDOW = 128 * 1024 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const RLE = 1;
const RESERVED = 3;

/** Bad zstd data (`corrupt`), or a frame that needs more memory than allowed (`window`). */
export class ZstdError extends Error {
  constructor(
    message: string,
    readonly kind: 'corrupt' | 'window',
  ) {
    super(message);
    this.name = 'ZstdError';
  }
}

/** Decompressed bytes of a zstd stream (one or more frames), produced only as fast as they are read. */
export async function* unzstd(source: AsyncIterable<Uint8Array>, maxWindow = MAX_ZSTD_WINDOW): AsyncGenerator<Uint8Array> {
  // fzstd hands out each block in a fresh buffer, so they can be queued uncopied.
  const out: Uint8Array[] = [];
  // Loaded at the first zstd layer: most images have none (issue 14).
  const { Decompress } = await import('fzstd');
  const decoder = new Decompress((block) => {
    if (block.byteLength > 0) out.push(block);
  });
  const feed = (piece: Uint8Array, final: boolean): void => {
    try {
      decoder.push(piece, final);
    } catch (err) {
      throw new ZstdError(err instanceof Error ? err.message : String(err), 'corrupt');
    }
  };
  for await (const piece of zstdPieces(source, maxWindow)) {
    feed(piece, false);
    yield* out.splice(0);
  }
  feed(new Uint8Array(0), true);
  yield* out.splice(0);
}

/** The stream cut at frame and block boundaries; skippable frames are dropped (they carry no output). */
async function* zstdPieces(source: AsyncIterable<Uint8Array>, maxWindow: number): AsyncGenerator<Uint8Array> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  for (let magic = await r.take(4, true); magic !== null; magic = await r.take(4, true)) {
    const m = u32(magic, 0);
    if ((m & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
      await r.skip(u32(await r.need(4), 0));
      continue;
    }
    if (m !== ZSTD_MAGIC) throw new ZstdError('bytes after a frame are not a zstd frame', 'corrupt');
    const descriptor = await r.need(1);
    const d = descriptor[0] ?? 0;
    const singleSegment = (d & 0x20) !== 0;
    const checksum = (d & 0x04) !== 0;
    const dictBytes = [0, 1, 2, 4][d & 0x03] ?? 0;
    const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][d >> 6] ?? 0;
    const rest = await r.need((singleSegment ? 0 : 1) + dictBytes + sizeBytes);
    // The window is the descriptor's (2^(10+exponent), plus eighths), or the whole content in one segment.
    let window: number;
    if (singleSegment) window = uintLE(rest, dictBytes, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
    else {
      const wd = rest[0] ?? 0;
      const base = 2 ** (10 + (wd >> 3));
      window = base + (base / 8) * (wd & 7);
    }
    if (window > maxWindow) {
      throw new ZstdError(`a zstd frame needs a ${window}-byte window, more than the ${maxWindow} bytes allowed`, 'window');
    }
    yield Buffer.concat([magic, descriptor, rest]);
    for (let last = false; !last; ) {
      const header = await r.need(3);
      const h = (header[0] ?? 0) | ((header[1] ?? 0) << 8) | ((header[2] ?? 0) << 16);
      last = (h & 1) === 1;
      const type = (h >> 1) & 3;
      if (type === RESERVED) throw new ZstdError('a zstd block has the reserved type', 'corrupt');
      yield header;
      const size = type === RLE ? 1 : h >>> 3;
      if (size > 0) yield await r.need(size);
    }
    if (checksum) yield await r.need(4);
  }
}

/** Exact-length reads from a chunked stream; each input byte is copied at most about once. */
class ByteReader {
  private parts: Uint8Array[] = [];
  private have = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** `n` bytes; null when the input ends cleanly before any (only if `endOk`). */
  async take(n: number, endOk: boolean): Promise<Uint8Array | null> {
    while (this.have < n) {
      if (await this.more()) continue;
      if (endOk && this.have === 0) return null;
      throw truncated();
    }
    const all = this.parts.length === 1 && this.parts[0] !== undefined ? this.parts[0] : Buffer.concat(this.parts);
    const rest = all.subarray(n);
    this.parts = rest.byteLength > 0 ? [rest] : [];
    this.have = rest.byteLength;
    return all.subarray(0, n);
  }

  async need(n: number): Promise<Uint8Array> {
    return (await this.take(n, false)) ?? new Uint8Array(0);
  }

  /** Drops `n` bytes, a chunk at a time: a skippable frame may say it is 4 GiB long. */
  async skip(n: number): Promise<void> {
    for (let left = n; left > 0; ) {
      if (this.have === 0 && !(await this.more())) throw truncated();
      const step = Math.min(left, this.have);
      await this.take(step, false);
      left -= step;
    }
  }

  private async more(): Promise<boolean> {
    const r = await this.it.next();
    if (r.done === true) return false;
    if (r.value.byteLength > 0) {
      this.parts.push(r.value);
      this.have += r.value.byteLength;
    }
    return true;
  }
}

function truncated(): ZstdError {
  return new ZstdError('the zstd stream ends in the middle of a frame', 'corrupt');
}

function u32(b: Uint8Array, at: number): number {
  return uintLE(b, at, 4);
}

function uintLE(b: Uint8Array, at: number, length: number): number {
  let v = 0;
  for (let i = length - 1; i >= 0; i--) v = v * 256 + (b[at + i] ?? 0);
  return v;
}
