/**
 * Who the container's process runs as, from CRI's security context and the image, with the image's
 * own /etc/passwd and /etc/group, as containerd's WithUser / WithUserID / WithUsername /
 * WithAdditionalGIDs do. The lookup is pure (resolveUserFrom); reading the files is the only effect,
 * and it resolves every symlink inside the rootfs so an image cannot point us at the host's files.
 */
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';
import type { ImageConfigFile } from '../images/types.js';
import type { ContainerConfig } from './cri-container-types.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups, without the primary gid. */
  additionalGids: number[];
  /** The passwd name of the uid, or null when the image has no entry for it. */
  username: string | null;
  /** The passwd home, "/" without an entry (runc's default); for HOME when the env lacks it. */
  home: string;
}

export interface UserOptions {
  /** The image config's User: "", "name", "uid", "name:group", "uid:gid" (mixed forms too). */
  imageUser: string;
  runAsUser: number | null;
  runAsGroup: number | null;
  runAsUsername: string;
  supplementalGroups: number[];
  /** Strict: only the primary and the requested groups, not the image's memberships. Default Merge. */
  supplementalGroupsPolicy?: 'Merge' | 'Strict';
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The largest id Linux accepts; 4294967295 is (uid_t)-1, "no change". */
const MAX_ID = 4294967294;
/** passwd/group bigger than this are not something an image should ship; refuse rather than buffer. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
const MAX_SYMLINK_HOPS = 40;

const isId = (s: string): boolean => /^\d+$/.test(s) && Number(s) <= MAX_ID;

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const [name, , uid, gid, , home] = f;
    if (f.length < 7 || !name || line.startsWith('#') || !isId(uid ?? '') || !isId(gid ?? '')) continue;
    entries.push({ name, uid: Number(uid), gid: Number(gid), home: home || '/' });
  }
  return entries;
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const [name, , gid, members] = f;
    if (f.length < 4 || !name || line.startsWith('#') || !isId(gid ?? '')) continue;
    entries.push({ name, gid: Number(gid), members: (members ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return entries;
}

/**
 * The pure part. Precedence: run_as_user, then run_as_username, then the image's User; the gid from
 * run_as_group, else the group part of the image's User (only when that User is what chose the uid),
 * else the passwd primary group, else 0. getpwnam semantics: the first matching line wins.
 */
export function resolveUserFrom(files: { passwd: PasswdEntry[]; group: GroupEntry[] }, opts: UserOptions): ResolvedUser {
  const byUid = (uid: number): PasswdEntry | undefined => files.passwd.find((e) => e.uid === uid);
  const byName = (name: string): PasswdEntry => {
    const e = files.passwd.find((p) => p.name === name);
    if (!e) throw new InvalidArgument(`user "${name}" not found in the image's /etc/passwd`);
    return e;
  };
  let uid: number;
  let entry: PasswdEntry | undefined;
  let imageGid: number | undefined;
  if (opts.runAsUser !== null) {
    uid = checkId(opts.runAsUser, 'run_as_user');
    entry = byUid(uid);
  } else if (opts.runAsUsername !== '') {
    entry = byName(opts.runAsUsername);
    uid = entry.uid;
  } else {
    const colon = opts.imageUser.indexOf(':');
    const userPart = colon < 0 ? opts.imageUser : opts.imageUser.slice(0, colon);
    const groupPart = colon < 0 ? '' : opts.imageUser.slice(colon + 1);
    if (userPart === '' || isId(userPart)) {
      uid = userPart === '' ? 0 : Number(userPart);
      entry = byUid(uid);
    } else {
      entry = byName(userPart);
      uid = entry.uid;
    }
    if (groupPart !== '') imageGid = isId(groupPart) ? Number(groupPart) : groupByName(files.group, groupPart);
  }
  const gid = opts.runAsGroup !== null ? checkId(opts.runAsGroup, 'run_as_group') : (imageGid ?? entry?.gid ?? 0);
  const username = entry?.name ?? null;
  const fromImage = username !== null && opts.supplementalGroupsPolicy !== 'Strict'
    ? files.group.filter((g) => g.members.includes(username)).map((g) => g.gid)
    : [];
  const requested = opts.supplementalGroups.map((g, i) => checkId(g, `supplemental_groups[${i}]`));
  const additionalGids = [...new Set([...fromImage, ...requested])].filter((g) => g !== gid);
  return { uid, gid, additionalGids, username, home: entry?.home ?? '/' };
}

function groupByName(groups: GroupEntry[], name: string): number {
  const g = groups.find((e) => e.name === name);
  if (!g) throw new InvalidArgument(`group "${name}" not found in the image's /etc/group`);
  return g.gid;
}

function checkId(n: number, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_ID) throw new InvalidArgument(`${field} must be an id between 0 and ${MAX_ID}, got ${n}`);
  return n;
}

/** Reads the image's passwd and group (absent files count as empty) and resolves. */
export async function resolveUser(rootfs: string, opts: UserOptions): Promise<ResolvedUser> {
  const [passwd, group] = await Promise.all([readFileInRoot(rootfs, '/etc/passwd'), readFileInRoot(rootfs, '/etc/group')]);
  return resolveUserFrom({ passwd: parsePasswd(passwd ?? ''), group: parseGroup(group ?? '') }, opts);
}

/** CRI's fields as UserOptions: int64 strings to numbers, each checked and named. */
export function userOptions(config: ContainerConfig, image: ImageConfigFile): UserOptions {
  const sc = config.linux?.securityContext ?? null;
  const id = (s: string, field: string): number => {
    if (!/^\d+$/.test(s)) throw new InvalidArgument(`${field} must be a non-negative id, got "${s}"`);
    return checkId(Number(s), field);
  };
  return {
    imageUser: image.config?.User ?? '',
    runAsUser: sc?.runAsUser ? id(sc.runAsUser.value, 'run_as_user') : null,
    runAsGroup: sc?.runAsGroup ? id(sc.runAsGroup.value, 'run_as_group') : null,
    runAsUsername: sc?.runAsUsername ?? '',
    supplementalGroups: (sc?.supplementalGroups ?? []).map((g, i) => id(g, `supplemental_groups[${i}]`)),
    supplementalGroupsPolicy: sc?.supplementalGroupsPolicy ?? 'Merge',
  };
}

/**
 * `path` resolved as if `root` were "/": absolute symlink targets restart at root and ".." stops
 * there (securejoin's rule), so no link in the image reaches a host file. Returns the host path;
 * a missing component ends the walk (the caller gets ENOENT on open).
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  let pending = path.split('/').filter(Boolean);
  let resolved: string[] = [];
  for (let hops = 0; pending.length > 0; ) {
    const [name = '', ...rest] = pending;
    pending = rest;
    if (name === '.') continue;
    if (name === '..') {
      resolved.pop();
      continue;
    }
    const hostPath = join(root, ...resolved, name);
    const st = await lstat(hostPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
      throw err;
    });
    if (!st) return join(root, ...resolved, name, ...pending);
    if (!st.isSymbolicLink()) {
      resolved.push(name);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new InvalidArgument(`too many symlinks resolving ${path} in the image`);
    const target = await readlink(hostPath);
    if (target.startsWith('/')) resolved = [];
    pending = [...target.split('/').filter(Boolean), ...pending];
  }
  return join(root, ...resolved);
}

/**
 * A file of the image, or null when it is absent or not a regular file. O_NOFOLLOW refuses a last
 * component swapped for a link after resolving; O_NONBLOCK keeps a FIFO planted at /etc/passwd from
 * hanging the daemon (we then see it is not a regular file and ignore it).
 */
export async function readFileInRoot(root: string, path: string): Promise<string | null> {
  const hostPath = await resolveInRoot(root, path);
  let handle;
  try {
    handle = await open(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new InvalidArgument(`cannot read ${path} in the image: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return null;
    if (st.size > MAX_FILE_BYTES) throw new InvalidArgument(`${path} in the image is ${st.size} bytes; the limit is ${MAX_FILE_BYTES}`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}
