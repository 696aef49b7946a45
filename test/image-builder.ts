/**
 * Builds OCI/Docker images in memory and pushes them to a test registry over the distribution HTTP
 * API (monolithic blob uploads, then the manifest), with the same auth flow the pull client uses.
 * Layers are real tars (tar-stream), gzip/zstd/uncompressed; whiteouts are plain `.wh.` entries.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import pino from 'pino';
import { pack } from 'tar-stream';
import { failure, RegistryAuth, type Sent } from '../images/registry/auth.js';
import { hostPlatform } from '../images/platform.js';
import { MediaType } from '../images/registry/client.js';
import type { Credentials, Descriptor, ImageConfigFile, ImageIndex, ImageManifest, Platform } from '../images/types.js';

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records, e.g. { 'SCHILY.xattr.user.foo': 'bar' }. */
  pax?: Record<string, string>;
}

export interface LayerSpec {
  compression: 'gzip' | 'zstd' | 'none';
  entries: TarEntry[];
}

export interface BuiltLayer {
  mediaType: string;
  /** Digest and size of the blob as pushed (compressed). */
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  bytes: Buffer;
  tar: Buffer;
}

export interface BuiltImage {
  format: 'oci' | 'docker';
  platform: Platform;
  config: ImageConfigFile;
  configBytes: Buffer;
  configDigest: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  manifestMediaType: string;
  layers: BuiltLayer[];
}

export interface BuildSpec {
  layers: LayerSpec[];
  config?: Partial<NonNullable<ImageConfigFile['config']>>;
  architecture?: string;
  os?: string;
  variant?: string;
  format?: 'oci' | 'docker';
}

/** Anything with the registry's base URL: a RegistryFixture, or { url }. */
export interface RegistryTarget {
  url: string;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Fixed timestamps keep builds reproducible: the same spec gives the same digests. */
const MTIME = new Date('2024-01-01T00:00:00Z');
const CREATED = MTIME.toISOString();

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export async function buildLayer(spec: LayerSpec, format: 'oci' | 'docker' = 'oci'): Promise<BuiltLayer> {
  const tar = await packTar(spec.entries);
  let bytes: Buffer;
  let mediaType: string;
  switch (spec.compression) {
    case 'gzip':
      bytes = gzipSync(tar);
      mediaType = format === 'docker' ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip';
      break;
    case 'zstd': {
      const out = await execa('zstd', ['-q', '-c', '-'], { input: tar, encoding: 'buffer' });
      bytes = Buffer.from(out.stdout);
      // Docker's schema 2 has no zstd type; Docker itself uses the OCI one in v2 manifests.
      mediaType = 'application/vnd.oci.image.layer.v1.tar+zstd';
      break;
    }
    case 'none':
      bytes = tar;
      mediaType = format === 'docker' ? 'application/vnd.docker.image.rootfs.diff.tar' : 'application/vnd.oci.image.layer.v1.tar';
      break;
  }
  return { mediaType, digest: sha256(bytes), size: bytes.length, diffId: sha256(tar), bytes, tar };
}

export async function buildImage(spec: BuildSpec): Promise<BuiltImage> {
  const format = spec.format ?? 'oci';
  const host = hostPlatform();
  const platform: Platform = { os: spec.os ?? 'linux', architecture: spec.architecture ?? host.architecture };
  const variant = spec.variant ?? (spec.architecture === undefined ? host.variant : undefined);
  if (variant !== undefined) platform.variant = variant;
  const layers: BuiltLayer[] = [];
  for (const l of spec.layers) layers.push(await buildLayer(l, format));
  const config: ImageConfigFile & { created: string; variant?: string } = {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [DEFAULT_PATH], ...spec.config },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: CREATED, created_by: 'podchart test image-builder' })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifestMediaType = format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: manifestMediaType,
    config: {
      mediaType: format === 'docker' ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      digest: sha256(configBytes),
      size: configBytes.length,
    },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
  return { format, platform, config, configBytes, configDigest: sha256(configBytes), manifest, manifestBytes, manifestDigest: sha256(manifestBytes), manifestMediaType, layers };
}

// --- pushing ---

const silent = pino({ level: 'silent' });

/** Pushes blobs and the manifest; tags it when `tag` is given. Returns the manifest digest. */
export async function pushImage(registry: RegistryTarget, repo: string, tag: string | null, image: BuiltImage, creds?: Credentials): Promise<string> {
  const session = pushSession(registry, repo, creds);
  for (const layer of image.layers) await pushBlob(session, layer.bytes, layer.digest);
  await pushBlob(session, image.configBytes, image.configDigest);
  await putManifest(session, image.manifestDigest, image.manifestBytes, image.manifestMediaType);
  if (tag !== null) await putManifest(session, tag, image.manifestBytes, image.manifestMediaType);
  return image.manifestDigest;
}

/** Pushes each image by digest, then an index (OCI, or a Docker list when all are Docker) under `tag`. */
export async function pushIndex(
  registry: RegistryTarget,
  repo: string,
  tag: string,
  images: { image: BuiltImage; platform?: Platform }[],
  creds?: Credentials,
): Promise<{ digest: string; bytes: Buffer; mediaType: string }> {
  const manifests: Descriptor[] = [];
  for (const { image, platform } of images) {
    await pushImage(registry, repo, null, image, creds);
    const p = platform ?? image.platform;
    manifests.push({ mediaType: image.manifestMediaType, digest: image.manifestDigest, size: image.manifestBytes.length, platform: { ...p } });
  }
  const docker = images.length > 0 && images.every(({ image }) => image.format === 'docker');
  const mediaType = docker ? MediaType.dockerList : MediaType.ociIndex;
  const index: ImageIndex = { schemaVersion: 2, mediaType, manifests };
  const bytes = Buffer.from(JSON.stringify(index, null, 2));
  await putManifest(pushSession(registry, repo, creds), tag, bytes, mediaType);
  return { digest: sha256(bytes), bytes, mediaType };
}

/** Puts arbitrary manifest bytes (for tests of odd manifests); the registry validates what it can. */
export async function pushManifestBytes(registry: RegistryTarget, repo: string, reference: string, bytes: Buffer, mediaType: string, creds?: Credentials): Promise<string> {
  await putManifest(pushSession(registry, repo, creds), reference, bytes, mediaType);
  return sha256(bytes);
}

interface PushSession {
  auth: RegistryAuth;
  base: string;
  repo: string;
  ctx: { base: string; scope: string; creds: Credentials | null };
}

function pushSession(registry: RegistryTarget, repo: string, creds?: Credentials): PushSession {
  const base = registry.url.replace(/\/+$/, '');
  return { auth: new RegistryAuth(10_000, silent), base, repo, ctx: { base, scope: `repository:${repo}:pull,push`, creds: creds ?? null } };
}

async function request(s: PushSession, url: string, init: RequestInit, ok: number[], what: string): Promise<Sent> {
  const sent = await s.auth.fetch(url, init, s.ctx);
  if (!ok.includes(sent.res.status)) throw await failure(s.base, sent, what, 10_000);
  return sent;
}

async function pushBlob(s: PushSession, bytes: Buffer, digest: string): Promise<void> {
  const head = await request(s, `${s.base}/v2/${s.repo}/blobs/${digest}`, { method: 'HEAD' }, [200, 404], `blob ${digest}`);
  if (head.res.status === 200) return;
  const start = await request(s, `${s.base}/v2/${s.repo}/blobs/uploads/`, { method: 'POST' }, [202], `upload to ${s.repo}`);
  await start.res.body?.cancel();
  const location = start.res.headers.get('location');
  if (location === null) throw new Error(`registry ${s.base} started an upload without a Location`);
  const url = new URL(location, s.base);
  url.searchParams.set('digest', digest);
  const put = await request(
    s,
    url.toString(),
    { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) } },
    [201],
    `blob ${digest}`,
  );
  await put.res.body?.cancel();
}

async function putManifest(s: PushSession, reference: string, bytes: Buffer, mediaType: string): Promise<void> {
  const put = await request(s, `${s.base}/v2/${s.repo}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'Content-Type': mediaType } }, [201], `manifest ${s.repo}:${reference}`);
  await put.res.body?.cancel();
}

// --- tar ---

const TAR_TYPES = { file: 'file', dir: 'directory', symlink: 'symlink', hardlink: 'link', char: 'character-device', block: 'block-device', fifo: 'fifo' } as const;

export async function packTar(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const content = e.type === 'file' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    const defaultMode = e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644;
    await new Promise<void>((resolve, reject) => {
      p.entry(
        {
          name: e.path.replace(/^\/+/, '') || '.',
          type: TAR_TYPES[e.type],
          mode: e.mode ?? defaultMode,
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: MTIME,
          size: content.length,
          ...(e.linkname !== undefined ? { linkname: e.type === 'hardlink' ? e.linkname.replace(/^\/+/, '') : e.linkname } : {}),
          ...(e.devmajor !== undefined ? { devmajor: e.devmajor } : {}),
          ...(e.devminor !== undefined ? { devminor: e.devminor } : {}),
          ...(e.pax ? { pax: e.pax } : {}),
        },
        content,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  p.finalize();
  await collected;
  return Buffer.concat(chunks);
}

// --- a busybox root filesystem from this host ---

const APPLETS = ['sh', 'ls', 'cat', 'echo', 'sleep', 'id', 'wget', 'nc', 'true', 'false',
  // Handy in end-to-end tests; `busybox <applet>` reaches the rest.
  'env', 'mkdir', 'rm', 'touch', 'grep', 'wc', 'head', 'ps', 'kill', 'hostname', 'pwd', 'stat', 'uname', 'printf', 'test'];

/**
 * A runnable busybox layer: the host's dynamic /usr/bin/busybox, the libraries ldd lists (with every
 * symlink on their paths, so /lib → usr/lib on merged-/usr hosts), users root, app (1000), nobody.
 */
export function busyboxLayer(): TarEntry[] {
  const entries = new Map<string, TarEntry>();
  const add = (e: TarEntry): void => {
    if (!entries.has(e.path)) entries.set(e.path, e);
  };
  for (const dir of ['/bin', '/etc', '/proc', '/sys', '/dev', '/home', '/mnt', '/usr', '/var']) add({ path: dir, type: 'dir', mode: 0o755 });
  add({ path: '/tmp', type: 'dir', mode: 0o1777 });
  add({ path: '/root', type: 'dir', mode: 0o700 });
  add({ path: '/home/app', type: 'dir', mode: 0o755, uid: 1000, gid: 1000 });
  add({ path: '/bin/busybox', type: 'file', mode: 0o755, content: readFileSync('/usr/bin/busybox') });
  for (const tool of APPLETS) add({ path: `/bin/${tool}`, type: 'symlink', linkname: 'busybox' });
  for (const lib of sharedLibraries('/usr/bin/busybox')) addHostPath(lib, add);
  add({
    path: '/etc/passwd',
    type: 'file',
    content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  });
  add({ path: '/etc/group', type: 'file', content: 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' });
  return [...entries.values()];
}

/** Paths of the libraries and loader `ldd` lists for a binary. */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const paths: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (m?.[1]) paths.push(m[1]);
  }
  return paths;
}

/** Copies a host file into the layer at the same path, recreating each symlink met on the way. */
function addHostPath(target: string, add: (e: TarEntry) => void): void {
  let pending = target.split('/').filter(Boolean);
  let resolved = '';
  for (let hops = 0; pending.length > 0; ) {
    const [name, ...rest] = pending;
    pending = rest;
    const p = `${resolved}/${name}`;
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many symlinks resolving ${target}`);
      const link = readlinkSync(p);
      add({ path: p, type: 'symlink', linkname: link });
      // `resolved` has no symlinks in it, so resolving '..' lexically is right.
      const next = posix.normalize(link.startsWith('/') ? link : `${resolved}/${link}`);
      pending = [...next.split('/').filter(Boolean), ...pending];
      resolved = '';
    } else if (st.isDirectory()) {
      add({ path: p, type: 'dir', mode: st.mode & 0o7777 });
      resolved = p;
    } else {
      add({ path: p, type: 'file', mode: st.mode & 0o7777, content: readFileSync(p) });
      resolved = p;
    }
  }
}
