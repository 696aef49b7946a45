/**
 * Unpacked layers, one directory per diffId, shared by every image and container that uses them.
 *
 * Layout: `<root>/<short>/fs/` is the layer (an overlay lower dir) and `<root>/<short>/diffid` names
 * it. `<short>` is the first 12 hex digits of the diffId, longer (16, 20, … 64) only on a collision,
 * because overlay's whole option string, every lowerdir included, must fit in one page. A layer
 * appears whole or not at all: it is unpacked and verified in `<root>/.stage-<random>/` and renamed
 * to `<short>` at the end; removal renames it to `.trash-<random>` before deleting.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataLoss, EffectFailed, InvalidArgument, NotFound } from '../errors/catalogue.js';
import { unpackLayer, type UnpackOptions } from './unpack.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../host/private-modes.js';
import { readdirOrEmpty } from '../host/fs-optional.js';

const DIFF_ID = /^sha256:([0-9a-f]{64})$/;
const SHORT = /^[0-9a-f]{12,64}$/;
const SHORT_LENGTHS = [12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64];

export interface DiskUsage {
  /** Allocated bytes (st_blocks × 512, as du counts), each hardlinked inode once. */
  bytes: number;
  inodes: number;
}

export class LayerStore {
  /** One unpack per diffId at a time: later callers share the first one's promise. */
  private readonly inflight = new Map<string, Promise<string>>();
  /** Stage dirs of unpacks in progress, which sweep() must not delete. */
  private readonly staging = new Set<string>();

  constructor(readonly root: string) {}

  /**
   * The layer's directory, unpacking it from `open()` first unless it is already here. `opts` go to
   * unpackLayer; a caller that finds the same layer being unpacked shares that unpack (and its budget).
   */
  async ensure(diffId: string, open: () => Promise<AsyncIterable<Uint8Array>>, opts: UnpackOptions = {}): Promise<string> {
    hexOf(diffId);
    const pending = this.inflight.get(diffId);
    if (pending !== undefined) return pending;
    const work = this.unpackOnce(diffId, open, opts).finally(() => this.inflight.delete(diffId));
    this.inflight.set(diffId, work);
    return work;
  }

  async has(diffId: string): Promise<boolean> {
    return (await this.find(diffId)) !== null;
  }

  /** The layer's directory (an overlay lower dir); NotFound when it is not unpacked. */
  async dir(diffId: string): Promise<string> {
    const found = await this.find(diffId);
    if (found === null) throw new NotFound(`layer ${diffId} is not unpacked`);
    return join(found, 'fs');
  }

  /**
   * Deletes the layer; a no-op when it is absent. The caller makes sure no mounted rootfs uses it:
   * overlay does not pin its lower dirs.
   */
  async remove(diffId: string): Promise<void> {
    hexOf(diffId);
    // An unpack in progress would otherwise publish the layer right after it is removed. Its own
    // caller sees its outcome; here only its end matters.
    await this.inflight.get(diffId)?.catch(() => undefined);
    const found = await this.find(diffId);
    if (found === null) return;
    const trash = join(this.root, `.trash-${randomBytes(6).toString('hex')}`);
    await rename(found, trash);
    await rm(trash, { recursive: true, force: true });
  }

  /** The diffIds of every unpacked layer. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await this.names()) {
      const diffId = await readDiffId(join(this.root, name));
      if (diffId !== null) out.push(diffId);
    }
    return out;
  }

  /** Disk used by all layers (and by any unpack in progress). */
  async usage(): Promise<DiskUsage> {
    return diskUsage(this.root);
  }

  /**
   * Deletes stage and trash dirs a crash left behind (not those of this store's unpacks in
   * progress). Returns how many it removed. Meant for daemon start.
   */
  async sweep(): Promise<number> {
    let removed = 0;
    for (const name of await readdirOrEmpty(this.root)) {
      if (!/^\.(stage|trash)-/.test(name) || this.staging.has(name)) continue;
      await rm(join(this.root, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  private async unpackOnce(diffId: string, open: () => Promise<AsyncIterable<Uint8Array>>, opts: UnpackOptions): Promise<string> {
    const found = await this.find(diffId);
    if (found !== null) return join(found, 'fs');
    // 0700 up to the lower dir: the layer's own modes (setuid binaries, device nodes) start at fs/.
    await mkdir(this.root, { recursive: true, mode: PRIVATE_DIR });
    const name = `.stage-${randomBytes(6).toString('hex')}`;
    const stage = join(this.root, name);
    this.staging.add(name);
    try {
      await mkdir(stage, { mode: PRIVATE_DIR });
      const { diffId: got } = await unpackLayer(await open(), join(stage, 'fs'), opts);
      if (got !== diffId) throw new DataLoss(`layer content does not match its diffId: expected ${diffId}, got ${got}`);
      await writeFile(join(stage, 'diffid'), `${diffId}\n`, { mode: PRIVATE_FILE });
      return join(await this.publish(stage, diffId), 'fs');
    } finally {
      this.staging.delete(name);
      await rm(stage, { recursive: true, force: true }); // gone already when published
    }
  }

  /** Renames the stage to the first free short name; a taken one (another diffId's) is skipped. */
  private async publish(stage: string, diffId: string): Promise<string> {
    const hex = hexOf(diffId);
    for (const length of SHORT_LENGTHS) {
      const target = join(this.root, hex.slice(0, length));
      try {
        await rename(stage, target); // fails on a non-empty target: never replaces a layer
        return target;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        if ((await readDiffId(target)) === diffId) return target; // published meanwhile by another store on this root
      }
    }
    throw new EffectFailed(`no free directory name for layer ${diffId} under ${this.root}`);
  }

  /** `<root>/<short>` holding this diffId, or null. Every length is tried: a removal may leave a gap. */
  private async find(diffId: string): Promise<string | null> {
    const hex = hexOf(diffId);
    for (const length of SHORT_LENGTHS) {
      const candidate = join(this.root, hex.slice(0, length));
      if ((await readDiffId(candidate)) === diffId) return candidate;
    }
    return null;
  }

  private async names(): Promise<string[]> {
    return (await readdirOrEmpty(this.root)).filter((name) => SHORT.test(name));
  }
}

function hexOf(diffId: string): string {
  const hex = DIFF_ID.exec(diffId)?.[1];
  if (hex === undefined) throw new InvalidArgument(`invalid layer diffId ${JSON.stringify(diffId)}: want sha256:<64 hex>`);
  return hex;
}

async function readDiffId(layerDir: string): Promise<string | null> {
  try {
    return (await readFile(join(layerDir, 'diffid'), 'utf8')).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * What a tree takes on disk, like `du`: allocated blocks, hardlinked inodes once. Entries that vanish
 * during the walk are skipped (a container may be writing), as containerd's fs.DiskUsage does.
 */
export async function diskUsage(path: string): Promise<DiskUsage> {
  const seen = new Set<string>();
  const usage: DiskUsage = { bytes: 0, inodes: 0 };
  const stack = [path];
  for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
    let st;
    try {
      st = await lstat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    usage.bytes += st.blocks * 512;
    usage.inodes++;
    if (st.isDirectory()) {
      for (const name of await readdirOrEmpty(p)) stack.push(join(p, name));
    }
  }
  return usage;
}
