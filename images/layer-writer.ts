/**
 * Applies the entries of one untrusted layer tar to a directory, in overlayfs form, as containerd's
 * archive.Apply with its overlay converter does: whiteout files become 0/0 character devices and
 * opaque markers become `trusted.overlay.opaque=y`.
 *
 * Entries are taken relative to the layer directory (`/etc/passwd` lands at `<dir>/etc/passwd`, tar
 * semantics), but an entry whose path leaves the directory (`../x`), a hardlink whose target does,
 * and any entry whose parent path crosses a symlink are refused: following a symlink the layer
 * itself planted is how a tar writes onto the host ("tar slip"). Only the final component may be an
 * existing symlink, and it is replaced, never followed.
 */
import { constants } from 'node:fs';
import { chmod, lchown, link, lutimes, mkdir, open, rm, symlink, type FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Extract, Header as TarHeader } from 'tar-stream';
import { EffectFailed, InvalidArgument } from '../errors/catalogue.js';
import { run } from '../host/exec.js';
import { lstatOrNull } from '../host/fs-optional.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const XATTR = 'SCHILY.xattr.';
const RAW = Symbol('raw SCHILY.xattr values');

type PaxRecords = Record<string, string> & { [RAW]?: Map<string, Buffer> };
/** tar-stream's header as it really arrives: unknown typeflags come as null, pax only when present. */
export type Header = Partial<Omit<TarHeader, 'name' | 'type' | 'pax'>> & { name: string; type?: TarHeader['type'] | null; pax?: PaxRecords | null };

export function escapes(name: string): InvalidArgument {
  return new InvalidArgument(`layer entry ${name} escapes the layer directory`);
}

/**
 * tar-stream decodes PAX values as UTF-8, which mangles binary xattrs (security.capability holds
 * raw bytes). This keeps the raw record values beside the decoded ones, on the same per-entry object.
 * It hooks tar-stream's internal long-header decoder; unpack.test.ts checks a binary value survives.
 */
export function keepRawXattrs(tar: Extract): void {
  type Internals = { _header: { type?: string } | null; _pax: PaxRecords | null; _decodeLongHeader?: (this: Internals, buf: Buffer) => void };
  const internals = tar as unknown as Internals;
  const decode = internals._decodeLongHeader;
  if (typeof decode !== 'function') return; // values then stay UTF-8 decoded
  internals._decodeLongHeader = function (this: Internals, buf: Buffer) {
    decode.call(this, buf);
    if (this._header?.type === 'pax-header' && this._pax !== null) this._pax[RAW] = xattrRecords(buf);
  };
}

/** The SCHILY.xattr.* records of a PAX header ("<len> <key>=<value>\n" each), values as raw bytes. */
function xattrRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at);
    const len = space === -1 ? NaN : Number.parseInt(buf.toString('latin1', at, space), 10);
    if (!(len > 0) || at + len > buf.length) break;
    const record = buf.subarray(space + 1, at + len - 1);
    const eq = record.indexOf(0x3d);
    const key = eq === -1 ? '' : record.toString('utf8', 0, eq);
    if (key.startsWith(XATTR)) out.set(key, Buffer.from(record.subarray(eq + 1)));
    at += len;
  }
  return out;
}

/**
 * The entry's path relative to the layer root ('' for the root itself), or null when it leaves it.
 * Lexical, like containerd's: `a/../b` is `b`; `../x` and `a/../../x` escape.
 */
export function insideLayer(name: string): string | null {
  const trimmed = name.replace(/^\/+/, '');
  if (trimmed === '') return '';
  const normal = posix.normalize(trimmed).replace(/\/+$/, '');
  if (normal === '..' || normal.startsWith('../')) return null;
  return normal === '.' ? '' : normal;
}

interface DirAttrs {
  mode: number;
  mtime: Date;
}

/** Applies entries in order to one temp dir. Only this writer touches that dir while unpacking. */
export class LayerWriter {
  /** Relative paths known to be real directories (not symlinks), so parents are checked once. */
  private readonly dirs = new Set<string>(['']);
  /** Directory modes and mtimes, applied last: adding children changes a directory's mtime. */
  private readonly deferred = new Map<string, DirAttrs>();

  constructor(private readonly root: string) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  async apply(h: Header, body: AsyncIterable<unknown>): Promise<void> {
    const rel = insideLayer(h.name);
    if (rel === null) throw escapes(h.name);
    const base = posix.basename(rel);
    if (base.startsWith(WHITEOUT)) return this.whiteout(h, rel, base);
    if (rel === '' && h.type !== 'directory') throw new InvalidArgument(`layer entry ${h.name} replaces the layer root`);
    await this.parents(h.name, rel);
    const path = this.abs(rel);
    const uid = Number(h.pax?.uid ?? h.uid ?? 0);
    const gid = Number(h.pax?.gid ?? h.gid ?? 0);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime ?? new Date(0);
    switch (h.type) {
      case 'directory': {
        if (!(await this.clear(rel, true))) await mkdir(path, { mode: 0o700 });
        await lchown(path, uid, gid);
        await this.xattrs(h, path);
        this.dirs.add(rel);
        this.deferred.set(rel, { mode, mtime });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        await this.clear(rel, false);
        // O_EXCL|O_NOFOLLOW: the path was just cleared, so anything there now is not ours to write through.
        const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of body) await writeAll(file, chunk as Buffer); // tar-stream yields Buffers
          await file.chown(uid, gid);
          await file.chmod(mode); // after chown, which clears setuid/setgid
          await this.xattrs(h, path); // after chown, which drops security.capability
          await file.utimes(mtime, mtime);
        } finally {
          await file.close();
        }
        return;
      }
      case 'link': {
        const target = insideLayer(h.linkname ?? '');
        if (target === null || target === '') throw escapes(h.name);
        await this.existing(h.name, target);
        if (target === rel) return; // a link to itself: already there
        await this.clear(rel, false);
        // link(2) does not follow a final symlink on Linux, and the target's parents were checked above.
        await link(this.abs(target), path);
        return; // shares the target's inode, whose metadata its own entry set
      }
      case 'symlink': {
        if (!h.linkname) throw new InvalidArgument(`layer entry ${h.name} is a symlink without a target`);
        await this.clear(rel, false);
        await symlink(h.linkname, path); // verbatim, even absolute: resolved inside the container, never by us
        await lchown(path, uid, gid);
        await this.xattrs(h, path);
        await lutimes(path, mtime, mtime);
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        await this.clear(rel, false);
        const kind = h.type === 'fifo' ? ['p'] : [h.type === 'block-device' ? 'b' : 'c', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
        await run('mknod', ['-m', '0600', path, ...kind]);
        await lchown(path, uid, gid);
        await chmod(path, mode); // a fresh node at a checked path: nothing to follow
        await this.xattrs(h, path);
        await lutimes(path, mtime, mtime);
        return;
      }
      default:
        throw new InvalidArgument(`layer entry ${h.name} has an unsupported type ${String(h.type)}`);
    }
  }

  /** Whiteouts in overlayfs form, as containerd's OverlayConvertWhiteout writes them. */
  private async whiteout(h: Header, rel: string, base: string): Promise<void> {
    await this.parents(h.name, rel);
    const parent = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
    if (base === OPAQUE) {
      await setXattr(this.abs(parent), 'trusted.overlay.opaque', Buffer.from('y'), false);
      return;
    }
    if (base.startsWith(WHITEOUT + WHITEOUT)) return; // aufs bookkeeping (.wh..wh.plnk): no meaning for overlay
    const name = base.slice(WHITEOUT.length);
    if (name === '.' || name === '..') throw escapes(h.name);
    const target = parent === '' ? name : `${parent}/${name}`;
    await this.clear(target, false);
    await run('mknod', ['-m', '0000', this.abs(target), 'c', '0', '0']);
    await lchown(this.abs(target), Number(h.uid ?? 0), Number(h.gid ?? 0));
  }

  /** Makes every parent of `rel` a real directory, creating missing ones; refuses a symlink among them. */
  private async parents(name: string, rel: string): Promise<void> {
    const parts = rel.split('/');
    let p = '';
    for (const part of parts.slice(0, -1)) {
      p = p === '' ? part : `${p}/${part}`;
      if (this.dirs.has(p)) continue;
      const st = await lstatOrNull(this.abs(p));
      if (st === null) {
        await mkdir(this.abs(p), { mode: 0o755 });
        await chmod(this.abs(p), 0o755); // implicit parents get tar's default, whatever the umask
      } else if (st.isSymbolicLink()) throw escapes(name);
      else if (!st.isDirectory()) throw new InvalidArgument(`layer entry ${name}: ${p} is not a directory`);
      this.dirs.add(p);
    }
  }

  /** A hardlink target: its parents are real directories and it exists as a non-directory. */
  private async existing(name: string, target: string): Promise<void> {
    let p = '';
    for (const part of target.split('/').slice(0, -1)) {
      p = p === '' ? part : `${p}/${part}`;
      if (this.dirs.has(p)) continue;
      const st = await lstatOrNull(this.abs(p));
      if (st?.isSymbolicLink() === true) throw escapes(name);
      if (st?.isDirectory() !== true) throw new InvalidArgument(`layer entry ${name} links to missing ${target}`);
      this.dirs.add(p);
    }
    const st = await lstatOrNull(this.abs(target));
    if (st === null || st.isDirectory()) throw new InvalidArgument(`layer entry ${name} links to missing ${target}`);
  }

  /**
   * Removes what an entry replaces (tar semantics; an existing directory stays when the entry is one).
   * Returns whether a directory was kept.
   */
  private async clear(rel: string, keepDir: boolean): Promise<boolean> {
    const st = await lstatOrNull(this.abs(rel));
    if (st === null) return false;
    if (keepDir && st.isDirectory()) return true;
    await rm(this.abs(rel), { recursive: true, force: true }); // does not follow symlinks
    for (const set of [this.dirs, this.deferred]) {
      for (const key of set.keys()) if (key === rel || key.startsWith(`${rel}/`)) set.delete(key);
    }
    return false;
  }

  private async xattrs(h: Header, path: string): Promise<void> {
    const pax = h.pax;
    if (pax === undefined || pax === null) return;
    for (const key of Object.keys(pax)) {
      // overlay's own xattrs (redirect, metacopy, opaque) would steer our mount: a layer says
      // "opaque" and "deleted" only with .wh. entries, as the image spec defines.
      if (!key.startsWith(XATTR) || key.startsWith(`${XATTR}trusted.overlay.`)) continue;
      const value = pax[RAW]?.get(key) ?? Buffer.from(pax[key] ?? '', 'utf8');
      await setXattr(path, key.slice(XATTR.length), value, true);
    }
  }

  async finish(): Promise<void> {
    for (const [rel, { mode, mtime }] of this.deferred) {
      const path = this.abs(rel);
      await chmod(path, mode); // still a directory: clear() drops replaced paths from `deferred`
      await lutimes(path, mtime, mtime);
    }
  }
}

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) offset += (await file.write(chunk, offset)).bytesWritten;
}

/**
 * Sets one xattr without following a final symlink, via setfattr (Debian package `attr`): Node has
 * no xattr API and podchart stays free of native addons. `fromImage` values whose namespace the
 * filesystem refuses (ENOTSUP, or EPERM as for user.* on a symlink) are skipped, as Docker and
 * containerd skip them; our own overlay markers must be set.
 */
export async function setXattr(path: string, name: string, value: Buffer, fromImage: boolean): Promise<void> {
  try {
    await run('setfattr', ['-h', '-n', name, '-v', `0x${value.toString('hex')}`, '--', path], {
      allowFailure: (r) => fromImage && /Operation not (supported|permitted)/.test(r.stderr),
    });
  } catch (err) {
    if (err instanceof EffectFailed && /spawn setfattr ENOENT/.test(err.message)) {
      throw new EffectFailed(`setfattr is missing (install the Debian package attr): cannot set ${name} on ${path}`, { cause: err });
    }
    throw err;
  }
}

