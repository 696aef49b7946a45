/**
 * Unpacks one image layer (a tar, plain or gzip/zstd compressed) into a directory in overlayfs
 * form: the bytes are decompressed and parsed here, and each entry is applied by layer-writer.ts,
 * which refuses anything that would write outside the directory ("tar slip"). Unpacking happens
 * in `<dir>.tmp-<random>`, renamed into place at the end, so a refused or failed layer leaves
 * nothing behind.
 *
 * Memory stays bounded whatever the layer expands to: every stage streams with backpressure (zstd
 * through zstd-stream.ts), and the caller's `onBytes` sees each uncompressed chunk before it is
 * written, so it can stop a bomb at a size budget (issue 12, item 2). Bytes that are not what they
 * claim to be (a broken gzip or zstd stream, something that is not a tar) are DataLoss, naming the
 * layer (issue 12, item 14); failures of our own (the disk, setfattr) stay INTERNAL.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AlreadyExists, DataLoss, EffectFailed, PodchartError, ResourceExhausted } from '../errors/catalogue.js';
import { keepRawXattrs, LayerWriter, type Header } from './layer-writer.js';
import { unzstd, ZstdError } from './zstd-stream.js';
import { PRIVATE_DIR } from '../host/private-modes.js';
import { lstatOrNull } from '../host/fs-optional.js';

export type ByteSource = AsyncIterable<Uint8Array> | NodeJS.ReadableStream;

export interface UnpackOptions {
  /** Names the layer in errors, e.g. "layer sha256:… of image x"; default "the layer". */
  what?: string;
  /** Told the size of each uncompressed chunk before it is applied; throws to stop the unpack. */
  onBytes?: (bytes: number) => void;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar stream, "sha256:<hex>": what an image config's rootfs.diff_ids lists. */
  diffId: string;
  /** Bytes of the uncompressed tar stream. */
  size: number;
}

export async function unpackLayer(input: ByteSource, dir: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  if ((await lstatOrNull(dir)) !== null) throw new AlreadyExists(`layer directory ${dir} already exists`);
  await mkdir(dirname(dir), { recursive: true, mode: PRIVATE_DIR }); // ours, around the layer
  const tmp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  await mkdir(tmp, { mode: 0o700 });
  try {
    await chmod(tmp, 0o755); // the layer root's mode unless the layer carries a "./" entry
    const result = await extractInto(input, tmp, opts);
    await rename(tmp, dir);
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof PodchartError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new EffectFailed(`unpacking layer into ${dir} failed: ${why}`, { cause: err });
  }
}

async function extractInto(input: ByteSource, root: string, opts: UnpackOptions): Promise<UnpackResult> {
  const what = opts.what ?? 'the layer';
  const { compression, chunks } = await sniff(bytesOf(input));
  const hash = createHash('sha256');
  let size = 0;
  // A pipeline fails every stage with the first error, and the entry loop below may see only the
  // echo ("Stream was destroyed"), so each stage records what it failed with, synchronously, before
  // the pipeline passes it on; the first one recorded is the cause.
  let streamError: Error | null = null;
  const record = (err: unknown): Error => (streamError ??= err instanceof Error ? err : new Error(String(err)));
  // The diffId covers every uncompressed byte, trailing padding included: hashed as the tar parser consumes it.
  const measure = async function* (tarBytes: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of tarBytes) {
        opts.onBytes?.(chunk.byteLength);
        hash.update(chunk);
        size += chunk.byteLength;
        yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (err) {
      throw record(err);
    }
  };
  const zstd = async function* (source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    try {
      yield* unzstd(source);
    } catch (err) {
      throw record(err);
    }
  };
  // Loaded at the first pull, not at start: a daemon that pulls nothing never holds it (issue 14).
  const { extract } = await import('tar-stream');
  const tar = extract();
  tar.on('error', record);
  keepRawXattrs(tar);
  const gunzip = compression === 'gzip' ? createGunzip() : null;
  gunzip?.on('error', record); // before pipeline's own listener, which destroys the other stages
  const feeding =
    gunzip !== null ? pipeline(chunks, gunzip, measure, tar) : compression === 'zstd' ? pipeline(chunks, zstd, measure, tar) : pipeline(chunks, measure, tar);
  // Settled to a value so a failure while applying entries does not leave it rejecting unobserved.
  const fed = feeding.then(
    () => null,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const writer = new LayerWriter(root);
  try {
    for await (const entry of tar) {
      await writer.apply(entry.header as Header, entry);
      await drain(entry); // apply reads regular files only; the parser waits until each body is consumed
    }
  } catch (err) {
    const cause = streamError; // taken before destroy(), which makes errors of its own
    tar.destroy();
    await fed;
    throw cause === null ? err : dataError(what, cause); // else applying an entry failed
  }
  const failed = await fed;
  if (failed !== null) throw dataError(what, streamError ?? failed);
  await writer.finish();
  return { diffId: `sha256:${hash.digest('hex')}`, size };
}

async function* bytesOf(input: ByteSource): AsyncGenerator<Uint8Array> {
  for await (const chunk of input as AsyncIterable<Uint8Array | string>) {
    yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
  }
}

/** Reads enough of the stream to see its magic bytes, then hands back the whole stream. */
async function sniff(source: AsyncIterable<Uint8Array>): Promise<{ compression: 'gzip' | 'zstd' | 'tar'; chunks: AsyncGenerator<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let seen = 0;
  let done = false;
  while (seen < 4 && !done) {
    const r = await it.next();
    if (r.done === true) done = true;
    else {
      head.push(r.value);
      seen += r.value.byteLength;
    }
  }
  const first = Buffer.concat(head);
  const compression =
    first[0] === 0x1f && first[1] === 0x8b ? 'gzip' : first.length >= 4 && first.readUInt32BE(0) === 0x28b52ffd ? 'zstd' : 'tar';
  async function* replay(): AsyncGenerator<Uint8Array> {
    try {
      if (first.byteLength > 0) yield first;
      while (!done) {
        const r = await it.next();
        if (r.done === true) done = true;
        else yield r.value;
      }
    } finally {
      await it.return?.(); // closes the caller's stream when unpacking stops early
    }
  }
  return { compression, chunks: replay() };
}

/**
 * What a failure of the stream stages means. A pipeline fails every stage with the first error, so
 * it is told by its kind, not by the stage it surfaced in: a zstd or zlib complaint is a broken
 * stream (DataLoss; a zstd window too big to allow is ResourceExhausted), ours and system errors
 * (E*, reading the blob) stay as they are, and what is left is tar-stream refusing the bytes.
 */
function dataError(what: string, err: unknown): Error {
  const fix = 'the registry holds a broken image; push it again';
  if (err instanceof PodchartError) return err;
  if (err instanceof ZstdError) {
    return err.kind === 'window'
      ? new ResourceExhausted(`${what}: ${err.message}; recompress it with a smaller window (only zstd --long above 27 makes larger ones)`)
      : new DataLoss(`${what} is not a valid zstd stream (${err.message}): ${fix}`);
  }
  // zlib names its data errors Z_DATA_ERROR, Z_BUF_ERROR (truncated), Z_NEED_DICT…; fs errors are E*.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) return new DataLoss(`${what} is not a valid gzip stream (${message(err)}): ${fix}`);
  if (typeof code === 'string' || typeof code === 'number') return err instanceof Error ? err : new Error(String(err));
  return new DataLoss(`${what} is not a valid tar archive (${message(err)}): ${fix}`);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function drain(body: AsyncIterable<unknown>): Promise<void> {
  for await (const chunk of body) void chunk;
}
