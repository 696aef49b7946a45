/**
 * The content-addressed blob store: manifests, configs and compressed layers at
 * `<root>/blobs/sha256/<hex>`, as containerd's content store lays them out. A blob is written to
 * `<root>/ingest/` while it is hashed and renamed into place only once its digest checks out, so a
 * file under blobs/ is always complete and correct, even after a crash mid-download.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataLoss, EffectFailed, InvalidArgument, NotFound } from '../errors/catalogue.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../host/private-modes.js';

const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

/** A blob's bytes: a response stream, or chunks already in memory (a manifest). */
export type Body = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** The hex part of a sha256 digest; any other algorithm or shape is InvalidArgument. */
export function digestHex(digest: string): string {
  const hex = DIGEST_RE.exec(digest)?.[1];
  if (hex === undefined) {
    throw new InvalidArgument(
      digest.includes(':') && !digest.startsWith('sha256:')
        ? `unsupported digest algorithm in "${digest}": only sha256 is accepted`
        : `invalid digest "${digest}": expected sha256:<64 lowercase hex>`,
    );
  }
  return hex;
}

export class ContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestDir: string;
  /** One write per digest at a time: a second ingest of the same blob waits for the first. */
  private readonly inflight = new Map<string, Promise<void>>();
  /** Temp files being written right now, which cleanIngest must not delete. */
  private readonly activeTemps = new Set<string>();

  constructor(root: string) {
    this.root = root;
    this.blobDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  path(digest: string): string {
    return join(this.blobDir, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Streams `body` into the store, verifying size and digest. Existing blobs are not downloaded again:
   * the body is then cancelled unread, which releases a pending HTTP response.
   */
  async ingest(digest: string, body: Body, expectedSize?: number, onProgress?: (bytes: number) => void): Promise<void> {
    const hex = digestHex(digest);
    const running = this.inflight.get(hex);
    if (running !== undefined) {
      await cancel(body);
      return running;
    }
    // Registered before the first await, so a concurrent call for the same digest always finds it.
    const write = this.write(digest, hex, body, expectedSize, onProgress).finally(() => this.inflight.delete(hex));
    this.inflight.set(hex, write);
    return write;
  }

  private async write(digest: string, hex: string, body: Body, expectedSize: number | undefined, onProgress: ((bytes: number) => void) | undefined): Promise<void> {
    if (await this.has(digest)) {
      await cancel(body);
      return;
    }
    // Private blobs may be private images: dirs 0700, blobs 0600 (host/private-modes.ts).
    await mkdir(this.ingestDir, { recursive: true, mode: PRIVATE_DIR });
    await mkdir(this.blobDir, { recursive: true, mode: PRIVATE_DIR });
    const temp = join(this.ingestDir, `${hex}.${randomBytes(6).toString('hex')}`);
    this.activeTemps.add(temp);
    try {
      const hash = createHash('sha256');
      let bytes = 0;
      const file = await open(temp, 'wx', PRIVATE_FILE);
      try {
        for await (const chunk of body) {
          bytes += chunk.byteLength;
          // Stop early on an oversized body rather than filling the disk with a bad blob.
          if (expectedSize !== undefined && bytes > expectedSize) {
            throw new EffectFailed(`size mismatch for ${digest}: expected ${expectedSize} bytes, got more`);
          }
          hash.update(chunk);
          await writeAll(file, chunk);
          onProgress?.(bytes);
        }
        if (expectedSize !== undefined && bytes !== expectedSize) {
          throw new EffectFailed(`size mismatch for ${digest}: expected ${expectedSize} bytes, got ${bytes}`);
        }
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual !== digest) throw new DataLoss(`digest mismatch for ${digest}: got ${actual}`);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, join(this.blobDir, hex));
      await fsyncDir(this.blobDir);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    } finally {
      this.activeTemps.delete(temp);
    }
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.path(digest));
    } catch (err) {
      if (isNotFound(err)) throw new NotFound(`blob ${digest} is not in the content store`);
      throw err;
    }
  }

  async readJson<T>(digest: string): Promise<T> {
    const bytes = await this.read(digest);
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch (err) {
      throw new EffectFailed(`blob ${digest} is not valid JSON: ${(err as Error).message}`);
    }
  }

  /** Idempotent: deleting a missing blob is not an error. */
  async delete(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await readdirOrEmpty(this.blobDir);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`).sort();
  }

  /** Bytes and inodes under the root, for ImageFsInfo. */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    const total = { bytes: 0, inodes: 0 };
    const walk = async (dir: string): Promise<void> => {
      for (const name of await readdirOrEmpty(dir)) {
        const p = join(dir, name);
        let st;
        try {
          st = await lstat(p);
        } catch (err) {
          if (isNotFound(err)) continue; // deleted while we walked
          throw err;
        }
        total.inodes += 1;
        total.bytes += st.size;
        if (st.isDirectory()) await walk(p);
      }
    };
    await walk(this.root);
    return total;
  }

  /** Removes temp files a crash left behind (not those of ingests running in this process). */
  async cleanIngest(): Promise<number> {
    let removed = 0;
    for (const name of await readdirOrEmpty(this.ingestDir)) {
      const p = join(this.ingestDir, name);
      if (this.activeTemps.has(p)) continue;
      await rm(p, { force: true, recursive: true });
      removed += 1;
    }
    return removed;
  }
}

async function writeAll(file: import('node:fs/promises').FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

/** Makes the rename durable: without it a power cut can lose the directory entry. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Ends an unread body (a fetch stream's iterator `return()` cancels the download). */
async function cancel(body: Body): Promise<void> {
  const iterator = Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]();
  await iterator.return?.();
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
