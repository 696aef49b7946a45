/**
 * Pull, look up, list and remove images. A pull resolves the reference, streams every blob into
 * the content store (verified while it streams, a few layers at a time), unpacks each layer once per
 * diff id, and only then records the image and its refs in one transaction: a pull cut off midway
 * leaves no half image visible, and the next pull reuses every blob already fetched.
 *
 * What a registry sends is bounded before it costs anything (issue 12, item 2): the layer count and
 * the config's size are checked on the manifest, layers go a few at a time, and the blobs plus the
 * unpacked bytes must fit in the disk the image filesystem had free at the start, minus a reserve.
 * Each bound fails the pull with RESOURCE_EXHAUSTED saying which one and what to change.
 */
import { UsageCache, type Usage } from './usage-cache.js';
import { createHmac, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { PullProgress, untilAborted } from './pull-progress.js';
import { DataLoss, EffectFailed, InvalidArgument, NotFound, ResourceExhausted } from '../errors/catalogue.js';
import { eachLimited } from './pool.js';
import type { ImageRecord, LayerRecord } from '../storage/images.js';
import type { Store } from '../storage/store.js';
import type { ContentStore } from './content-store.js';
import type { LayerStore } from './layer-store.js';
import { mountRootfs, removeRootfs, unmountRootfs, writableLayerUsage } from './rootfs.js';
import { parseReference } from './reference.js';
import type { RegistryClient } from './registry/client.js';
import { hasCredentials } from './registry/credentials.js';
import type { Credentials, Descriptor, ImageConfigFile, ImageManifest, ImageReference, Platform } from './types.js';

/** The bounds of one pull, from the config (maxImageLayers, pullLayerConcurrency, imageFsReserveBytes). */
export interface PullLimits {
  maxLayers: number;
  layerConcurrency: number;
  reserveBytes: number;
  /** imagePullProgressTimeoutMs: a pull that moves no byte for this long is cancelled; 0: never. */
  progressTimeoutMs: number;
}

export interface ImageServiceDeps {
  store: Store;
  content: ContentStore;
  layers: LayerStore;
  registry: RegistryClient;
  logger: Logger;
  platform: Platform;
  limits: PullLimits;
  /** Told of each finished pull (for metrics). */
  onPulled?: (bytes: number, seconds: number) => void;
}

/** An image config is a small JSON document (containerd reads it whole too); 4 MiB is far above any real one. */
export const CONFIG_LIMIT = 4 * 1024 * 1024;
const BROKEN = 'the registry holds a broken image; push it again';

export class ImageService {
  /**
   * Pulls in flight by reference and credentials: two pulls of one image with the same credentials
   * share one download; a pull with other credentials, or none, runs on its own, so it succeeds
   * or fails on its own credentials instead of riding along on someone else's (issue 11).
   */
  private readonly pulls = new Map<string, Promise<ImageRecord>>();
  /** Keys the credential identity in `pulls`: an HMAC, so not even a hash of a password is kept. */
  private readonly identityKey = randomBytes(32);
  /** Blobs and layers a pull in flight needs: never garbage-collected under it. */
  private readonly busy = new Map<string, number>();

  constructor(private readonly deps: ImageServiceDeps) {}

  pull(refText: string, creds: Credentials | null): Promise<ImageRecord> {
    const ref = parseReference(refText);
    const key = `${ref.full} ${this.identity(creds)}`;
    const running = this.pulls.get(key);
    if (running) return running;
    const pull = this.doPull(ref, creds).finally(() => this.pulls.delete(key));
    this.pulls.set(key, pull);
    return pull;
  }

  /** Who a pull is made as: "anonymous", or an HMAC of every field of its credentials. */
  private identity(creds: Credentials | null): string {
    if (!hasCredentials(creds)) return 'anonymous';
    const fields = [creds.username, creds.password, creds.auth, creds.identityToken, creds.registryToken, creds.serverAddress];
    return createHmac('sha256', this.identityKey).update(JSON.stringify(fields)).digest('hex');
  }

  private async doPull(ref: ImageReference, creds: Credentials | null): Promise<ImageRecord> {
    const log = this.deps.logger.child({ image: ref.full });
    const started = Date.now();
    const resolved = await this.deps.registry.resolve(ref, creds, this.deps.platform);
    const { manifest } = resolved;
    this.checkManifest(ref, manifest); // before anything is stored or fetched
    const keys = [resolved.manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    this.hold(keys);
    // From the config's download on: a blob that stalls is cut off after imagePullProgressTimeoutMs.
    const progress = new PullProgress(log, ref.full, manifest.layers, this.deps.limits.progressTimeoutMs);
    try {
      const budget = await this.diskBudget(ref, manifest);
      await this.deps.content.ingest(resolved.manifestDigest, [resolved.manifestBytes], resolved.manifestBytes.length);
      await this.fetch(resolved, manifest.config, creds, () => progress.moved(), progress.signal);
      const configBytes = await this.deps.content.read(manifest.config.digest);
      const diffIds = parseDiffIds(ref, manifest.config.digest, configBytes);
      if (diffIds.length !== manifest.layers.length) {
        throw new DataLoss(`image ${ref.full} is inconsistent: ${manifest.layers.length} layers but ${diffIds.length} diff ids in its config; ${BROKEN}`);
      }
      this.hold(diffIds);
      try {
        // A few at a time: each layer holds a connection, a decompressor and a stage dir while it runs.
        await eachLimited(manifest.layers, this.deps.limits.layerConcurrency, async (layer, i) => {
          await this.fetch(resolved, layer, creds, (bytes) => progress.downloaded(layer.digest, bytes), progress.signal);
          const diffId = diffIds[i] ?? '';
          const onBytes = (bytes: number): void => {
            budget(bytes);
            progress.moved();
          };
          await this.deps.layers.ensure(diffId, async () => createReadStream(this.deps.content.path(layer.digest)), { what: `layer ${layer.digest} of image ${ref.full}`, onBytes });
          progress.layerDone(layer.digest);
        });
        const layers: LayerRecord[] = manifest.layers.map((l, i) => ({ digest: l.digest, diffId: diffIds[i] ?? '', size: l.size, mediaType: l.mediaType }));
        const size = configBytes.length + manifest.layers.reduce((n, l) => n + l.size, 0);
        this.deps.store.images.put(
          { id: manifest.config.digest, manifestDigest: resolved.manifestDigest, size, config: configBytes.toString('utf8'), layers, pulledAt: Date.now() },
          { tag: ref.tag ? `${ref.name}:${ref.tag}` : null, repoDigest: `${ref.name}@${resolved.repoDigest}` },
        );
      } finally {
        this.release(diffIds);
      }
    } catch (err) {
      throw progress.failure(err);
    } finally {
      // A failed layer must stop the report too, or it logs "pulling: …" for ever [issue 12 item 16].
      progress.stop();
      this.release(keys);
    }
    const image = this.deps.store.images.get(manifest.config.digest);
    if (!image) throw new EffectFailed(`image ${ref.full} vanished right after it was recorded`);
    this.usageCache.changed();
    log.info({ id: image.id, ms: Date.now() - started, from: resolved.endpoint.base, mirror: resolved.endpoint.mirror }, 'pulled');
    this.deps.onPulled?.(image.size, (Date.now() - started) / 1000);
    return image;
  }

  /** The bounds a manifest alone decides: checked before anything is fetched (issue 12, item 2). */
  private checkManifest(ref: ImageReference, manifest: ImageManifest): void {
    const { maxLayers } = this.deps.limits;
    if (manifest.layers.length > maxLayers) {
      throw new ResourceExhausted(
        `image ${ref.full} has ${manifest.layers.length} layers, more than the ${maxLayers} allowed (maxImageLayers): flatten the image, or raise maxImageLayers in the podchart config`,
      );
    }
    if (manifest.config.size > CONFIG_LIMIT) {
      throw new ResourceExhausted(`image ${ref.full} has a config of ${manifest.config.size} bytes, more than the ${CONFIG_LIMIT} accepted: no real image config is that big`);
    }
  }

  /**
   * The disk this pull may use: what the image filesystem has free now, minus imageFsReserveBytes.
   * The blobs still to download are taken from it at once (their sizes are known); the returned
   * function takes each uncompressed chunk as layers unpack and throws once the rest is used up.
   */
  private async diskBudget(ref: ImageReference, manifest: ImageManifest): Promise<(bytes: number) => void> {
    const { reserveBytes } = this.deps.limits;
    const where = this.deps.layers.root;
    const free = await freeBytes(where);
    let downloads = 0;
    for (const d of [manifest.config, ...manifest.layers]) if (!(await this.deps.content.has(d.digest))) downloads += d.size;
    const allowed = free - reserveBytes;
    const fix = 'free disk space there (remove unused images) or lower imageFsReserveBytes in the podchart config';
    if (downloads > allowed) {
      throw new ResourceExhausted(
        `image ${ref.full} needs ${downloads} bytes of downloads, but ${where} has ${free} bytes free and ${reserveBytes} must stay free (imageFsReserveBytes): ${fix}`,
      );
    }
    let left = allowed - downloads;
    return (bytes: number) => {
      left -= bytes;
      if (left < 0) {
        throw new ResourceExhausted(
          `image ${ref.full} unpacks to more than the ${allowed - downloads} bytes left for it on ${where} (${free} bytes were free at the start of the pull, ${reserveBytes} must stay free, ${downloads} went to downloads): ${fix}`,
        );
      }
    };
  }

  /** Streams one blob into the content store unless it is there already; `signal` cuts it off. */
  private async fetch(resolved: Parameters<RegistryClient['fetchBlob']>[0], d: Descriptor, creds: Credentials | null, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void> {
    if (await this.deps.content.has(d.digest)) {
      onProgress?.(d.size);
      return;
    }
    const body = await this.deps.registry.fetchBlob(resolved, d.digest, creds);
    await this.deps.content.ingest(d.digest, signal ? untilAborted(body, signal) : body, d.size, onProgress);
  }

  private hold(keys: readonly string[]): void {
    for (const k of keys) this.busy.set(k, (this.busy.get(k) ?? 0) + 1);
  }

  private release(keys: readonly string[]): void {
    for (const k of keys) {
      const n = (this.busy.get(k) ?? 1) - 1;
      if (n <= 0) this.busy.delete(k);
      else this.busy.set(k, n);
    }
  }

  /**
   * The image a CRI image spec names: repo tag, repo digest, full id or unique id prefix.
   * null when absent (ImageStatus answers with no image, as CRI requires).
   */
  find(text: string): ImageRecord | null {
    const images = this.deps.store.images;
    const trimmed = text.trim();
    if (trimmed === '') throw new InvalidArgument('image reference is required');
    if (/^(sha256:)?[0-9a-f]{64}$/.test(trimmed)) {
      const byId = images.get(trimmed.startsWith('sha256:') ? trimmed : `sha256:${trimmed}`);
      if (byId) return byId;
    }
    if (/^(sha256:)?[0-9a-f]{1,63}$/.test(trimmed)) {
      const ids = images.idsWithPrefix(trimmed);
      if (ids.length > 1) throw new InvalidArgument(`image id prefix "${trimmed}" is ambiguous: it matches ${ids.length} images; give more characters`);
      if (ids[0]) return images.get(ids[0]);
    }
    let ref: ImageReference;
    try {
      ref = parseReference(trimmed);
    } catch (err) {
      if (/^[0-9a-f]+$/.test(trimmed)) return null; // an unknown id prefix, not a malformed name
      throw err;
    }
    if (ref.digest) return images.byRef(`${ref.name}@${ref.digest}`);
    return images.byRef(`${ref.name}:${ref.tag ?? 'latest'}`);
  }

  list(): ImageRecord[] {
    return this.deps.store.images.list().filter((i) => i.repoTags.length + i.repoDigests.length > 0);
  }

  /**
   * RemoveImage. By a tag of an image with other tags: only that tag goes (CRI-O's rule). Otherwise
   * the image and every ref to it go, then the blobs and layers no other image uses. Absent: success.
   * An image in `inUse` (a container runs on it) loses its names but keeps its data until then.
   */
  async remove(text: string, inUse: ReadonlySet<string>): Promise<void> {
    const image = this.find(text);
    if (!image) return;
    const ref = safeParse(text);
    const tag = ref && !ref.digest ? `${ref.name}:${ref.tag ?? 'latest'}` : null;
    if (tag && image.repoTags.includes(tag) && image.repoTags.length > 1) {
      this.deps.store.images.removeRef(tag);
      return;
    }
    if (inUse.has(image.id)) {
      // A container still runs on it: forget its names, keep its data until that container goes.
      for (const r of [...image.repoTags, ...image.repoDigests]) this.deps.store.images.removeRef(r);
      return;
    }
    this.deps.store.images.delete(image.id);
    await this.collect(image);
  }

  /** Images removed while a container used them: collected once no container does. */
  async collectDangling(used: ReadonlySet<string>): Promise<void> {
    for (const image of this.deps.store.images.list()) {
      if (image.repoTags.length + image.repoDigests.length > 0 || used.has(image.id)) continue;
      this.deps.store.images.delete(image.id);
      await this.collect(image);
    }
  }

  /** Deletes the blobs and layers of a removed image that no other image (or pull in flight) uses. */
  private async collect(removed: ImageRecord): Promise<void> {
    const keep = new Set<string>(this.busy.keys());
    for (const other of this.deps.store.images.list()) {
      keep.add(other.id).add(other.manifestDigest);
      for (const l of other.layers) keep.add(l.digest).add(l.diffId);
    }
    const blobs = [removed.id, removed.manifestDigest, ...removed.layers.map((l) => l.digest)];
    for (const digest of blobs) if (!keep.has(digest)) await this.deps.content.delete(digest);
    for (const l of removed.layers) if (!keep.has(l.diffId)) await this.deps.layers.remove(l.diffId);
    this.usageCache.changed();
  }

  /** Bytes and inodes of the store, from memory (images/usage-cache.ts). */
  usage(): Promise<Usage> {
    return this.usageCache.get();
  }

  private readonly usageCache = new UsageCache(async () => {
    const [blobs, layers] = await Promise.all([this.deps.content.usage(), this.deps.layers.usage()]);
    return { bytes: blobs.bytes + layers.bytes, inodes: blobs.inodes + layers.inodes };
  });

  /**
   * The root filesystem API containers build on: an overlay of the image's layers (shared,
   * read-only) plus a writable layer of the container's own under `containerDir`.
   */
  async mountRootfs(imageId: string, containerDir: string, readonly = false): Promise<string> {
    const image = this.deps.store.images.get(imageId);
    if (!image) throw new NotFound(`image ${imageId} is not present on this node`);
    const lowerDirs = await Promise.all([...image.layers].reverse().map((l) => this.deps.layers.dir(l.diffId)));
    return mountRootfs({ lowerDirs, containerDir, readonly });
  }

  unmountRootfs(containerDir: string): Promise<void> {
    return unmountRootfs(containerDir);
  }

  removeRootfs(containerDir: string): Promise<void> {
    return removeRootfs(containerDir);
  }

  writableLayerUsage(containerDir: string): Promise<{ bytes: number; inodes: number }> {
    return writableLayerUsage(containerDir);
  }

  /** Throws NotFound naming the image when it is not present (CreateContainer's check). */
  require(text: string): ImageRecord {
    const image = this.find(text);
    if (!image) throw new NotFound(`image "${text}" is not present on this node: pull it first`);
    return image;
  }
}

/** The config's rootfs.diff_ids; a config that is not JSON, or has no such list, is DataLoss (issue 12, item 14). */
function parseDiffIds(ref: ImageReference, digest: string, bytes: Buffer): string[] {
  let config: unknown;
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new DataLoss(`the config ${digest} of image ${ref.full} is not JSON: ${BROKEN}`);
  }
  const diffIds = (config as Partial<ImageConfigFile> | null)?.rootfs?.diff_ids ?? [];
  if (typeof config !== 'object' || config === null || !Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string')) {
    throw new DataLoss(`the config ${digest} of image ${ref.full} is not an image config (it needs an object with rootfs.diff_ids, a list of digests): ${BROKEN}`);
  }
  return diffIds;
}

/** Free bytes where `path` is (or its nearest existing parent): bavail, so the filesystem's root reserve stays the host's. */
async function freeBytes(path: string): Promise<number> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const st = await statfs(p);
      return st.bavail * st.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw err;
    }
  }
}

function safeParse(text: string): ImageReference | null {
  try {
    return parseReference(text);
  } catch {
    return null;
  }
}
