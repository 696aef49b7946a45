/**
 * The registry client: resolves a reference to one platform's manifest and streams blobs, over the
 * distribution HTTP API v2. Endpoints are tried in order — configured mirrors, then the origin — as
 * containerd's hosts.toml does; any failure at a mirror falls through to the next, and the last
 * endpoint's error is the one reported. Bytes are verified against digests here (manifests) or by the
 * content store (blobs). The CRI credentials go to the endpoint whose host they are for, not to every
 * endpoint: a mirror on another host gets its own configured credentials or none (issue 11).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { DataLoss, EffectFailed, NotFound } from '../../errors/catalogue.js';
import { digestHex } from '../content-store.js';
import type { Credentials, Descriptor, Endpoint, ImageIndex, ImageManifest, ImageReference, Platform, RegistriesConfig, ResolvedImage } from '../types.js';
import { failure, readBody, RegistryAuth, streamBody, type AuthContext } from './auth.js';
import { credentialsApply, credentialsHost, hasCredentials, lookupCredentials, normalizeRegistryHost } from './credentials.js';

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const ACCEPT = [MediaType.ociIndex, MediaType.dockerList, MediaType.ociManifest, MediaType.dockerManifest].join(', ');
/** containerd's cap on a manifest: anything larger is not a manifest. */
const MANIFEST_LIMIT = 4 * 1024 * 1024;
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ORIGIN = 'https://registry-1.docker.io';

export class RegistryClient {
  private readonly auth: RegistryAuth;

  constructor(
    private readonly config: RegistriesConfig,
    private readonly logger: Logger,
  ) {
    this.auth = new RegistryAuth(config.requestTimeoutMs, logger);
  }

  /** Mirrors for the reference's registry (repository path kept), then the origin. */
  endpoints(ref: ImageReference): Endpoint[] {
    const registry = ref.domain;
    const mirrors = (this.config.hosts[ref.domain]?.mirrors ?? []).map((m) => ({ base: this.mirrorBase(m), repository: ref.path, mirror: true, registry }));
    const origin = ref.domain === DOCKER_HUB ? DOCKER_HUB_ORIGIN : `${this.scheme(ref.domain)}://${ref.domain}`;
    return [...mirrors, { base: origin, repository: ref.path, mirror: false, registry }];
  }

  async resolve(ref: ImageReference, creds: Credentials | null, platform: Platform): Promise<ResolvedImage> {
    let last: unknown = new EffectFailed(`no endpoint for ${ref.full}`);
    const endpoints = this.endpoints(ref);
    for (const [i, endpoint] of endpoints.entries()) {
      try {
        const resolved = await this.resolveAt(endpoint, ref, creds, platform);
        this.logger.debug({ image: ref.full, endpoint: endpoint.base, digest: resolved.repoDigest }, 'image resolved');
        return resolved;
      } catch (err) {
        last = err;
        if (i < endpoints.length - 1) this.logger.debug({ image: ref.full, endpoint: endpoint.base, err: (err as Error).message }, 'endpoint failed, trying the next');
      }
    }
    throw last;
  }

  /** A blob's bytes as a stream (redirects followed, e.g. to S3); the content store verifies them. */
  async fetchBlob(resolved: ResolvedImage | { endpoint: Endpoint }, digest: string, creds: Credentials | null): Promise<AsyncIterable<Uint8Array>> {
    digestHex(digest);
    const { endpoint } = resolved;
    const url = `${endpoint.base}/v2/${endpoint.repository}/blobs/${digest}`;
    const sent = await this.auth.fetch(url, { redirect: 'follow' }, await this.authContext(endpoint, creds));
    if (sent.res.status !== 200) throw await failure(endpoint.base, sent, `blob ${digest} of ${endpoint.repository}`, this.config.requestTimeoutMs);
    return streamBody(endpoint.base, sent, this.config.requestTimeoutMs);
  }

  private async resolveAt(endpoint: Endpoint, ref: ImageReference, creds: Credentials | null, platform: Platform): Promise<ResolvedImage> {
    const target = ref.digest ?? ref.tag ?? 'latest';
    const top = await this.getManifest(endpoint, target, creds, ref.full);
    if (ref.digest !== null && top.digest !== ref.digest) {
      throw new DataLoss(`manifest digest mismatch for ${ref.full}: got ${top.digest} from ${endpoint.base}`);
    }
    if (top.kind === 'manifest') {
      return { endpoint, repoDigest: top.digest, manifestDigest: top.digest, manifest: parseManifest(top.json, ref.full), manifestBytes: top.bytes, indexBytes: null };
    }
    const choice = choosePlatform(parseIndex(top.json, ref.full).manifests, platform);
    if (choice === null) {
      const available = parseIndex(top.json, ref.full).manifests.flatMap((d) => (d.platform ? [formatPlatform(d.platform)] : []));
      throw new NotFound(`image ${ref.full} has no manifest for ${formatPlatform(platform)} (it has: ${available.join(', ') || 'none'})`);
    }
    const child = await this.getManifest(endpoint, choice.digest, creds, `${ref.full} (${formatPlatform(platform)})`);
    if (child.digest !== choice.digest || child.bytes.length !== choice.size) {
      throw new DataLoss(`manifest digest mismatch for ${choice.digest} in ${ref.full}: got ${child.digest}, ${child.bytes.length} bytes`);
    }
    if (child.kind !== 'manifest') throw new EffectFailed(`image ${ref.full}: nested image indexes are not supported`);
    return {
      endpoint,
      repoDigest: top.digest,
      manifestDigest: child.digest,
      manifest: parseManifest(child.json, ref.full),
      manifestBytes: child.bytes,
      indexBytes: top.bytes,
    };
  }

  private async getManifest(endpoint: Endpoint, target: string, creds: Credentials | null, what: string): Promise<FetchedManifest> {
    const url = `${endpoint.base}/v2/${endpoint.repository}/manifests/${target}`;
    const timeout = this.config.requestTimeoutMs;
    const sent = await this.auth.fetch(url, { headers: { Accept: ACCEPT } }, await this.authContext(endpoint, creds));
    if (sent.res.status !== 200) throw await failure(endpoint.base, sent, `image ${what}`, timeout);
    const bytes = await readBody(endpoint.base, sent, MANIFEST_LIMIT, timeout);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const claimed = sent.res.headers.get('docker-content-digest');
    if (claimed !== null && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new DataLoss(`manifest digest mismatch for ${what}: ${endpoint.base} says ${claimed}, the bytes hash to ${digest}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new DataLoss(`manifest for ${what} from ${endpoint.base} is not JSON: the registry holds a broken image; push it again`);
    }
    const contentType = (sent.res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    return { bytes, digest, json, kind: manifestKind(contentType, json, what) };
  }

  /**
   * The credentials for one endpoint: the CRI's when they are for its host (credentialsApply), else
   * the ones configured for its host. When the CRI's were held back, a refusal says for which host
   * they were, so a wrong server_address or an unauthenticated mirror is plain from the message.
   */
  private async authContext(endpoint: Endpoint, creds: Credentials | null): Promise<AuthContext> {
    const host = registryHost(endpoint.base);
    const given = hasCredentials(creds) ? creds : null;
    const own = given !== null && credentialsApply(given, endpoint.registry, host) ? given : null;
    const ctx: AuthContext = {
      base: endpoint.base,
      scope: `repository:${endpoint.repository}:pull`,
      creds: await lookupCredentials(this.config, host, own),
    };
    if (given !== null && own === null && ctx.creds === null) {
      const forHost = credentialsHost(given, endpoint.registry);
      ctx.withheld = endpoint.mirror
        ? `the credentials given are for ${forHost}, so they were not sent to the mirror ${host}; its own go in registries.hosts["${host}"].auth`
        : `the credentials given are for ${forHost}${given.serverAddress ? ' (their server_address)' : ''}, so they were not sent to ${host}`;
    }
    return ctx;
  }

  private mirrorBase(mirror: string): string {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(mirror) ? mirror : `${this.scheme(mirror.split('/')[0] ?? mirror)}://${mirror}`;
    // "http://mirror:5000/v2" and "http://mirror:5000/" both mean the registry at that base.
    return withScheme.replace(/\/+$/, '').replace(/\/v2$/, '');
  }

  /** http only where allowed (insecureHosts, or the host marked insecure); Node's fetch cannot skip TLS checks. */
  private scheme(host: string): 'http' | 'https' {
    if (this.config.hosts[host]?.insecure) return 'http';
    const hostname = new URL(`http://${host}`).hostname;
    const allowed = this.config.insecureHosts.some((h) => h === host || h === hostname || `[${h}]` === hostname);
    return allowed ? 'http' : 'https';
  }
}

interface FetchedManifest {
  bytes: Buffer;
  digest: string;
  json: unknown;
  kind: 'index' | 'manifest';
}

/** The host credentials are looked up under: docker.io for Docker Hub's origin, else the endpoint's host. */
export function registryHost(base: string): string {
  return normalizeRegistryHost(new URL(base).host);
}

function manifestKind(contentType: string, json: unknown, what: string): 'index' | 'manifest' {
  const doc = (typeof json === 'object' && json !== null ? json : {}) as { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown; config?: unknown };
  const type = typeof doc.mediaType === 'string' ? doc.mediaType : contentType;
  if (doc.schemaVersion === 1 || type === MediaType.dockerSchema1 || type === MediaType.dockerSchema1Signed) {
    throw new EffectFailed(`image ${what} uses unsupported manifest schema 1; push it again with a current client (schema 2 or OCI)`);
  }
  if (type === MediaType.ociIndex || type === MediaType.dockerList || Array.isArray(doc.manifests)) return 'index';
  if (type === MediaType.ociManifest || type === MediaType.dockerManifest || doc.config !== undefined) return 'manifest';
  throw new EffectFailed(`image ${what}: unsupported manifest media type "${type}"`);
}

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Partial<Descriptor> | null;
  return typeof x === 'object' && x !== null && typeof x.digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(x.digest) && typeof x.size === 'number' && typeof x.mediaType === 'string';
}

function parseManifest(json: unknown, what: string): ImageManifest {
  const m = json as Partial<ImageManifest>;
  if (m.schemaVersion !== 2 || !isDescriptor(m.config) || !Array.isArray(m.layers) || !m.layers.every(isDescriptor)) {
    throw new DataLoss(`manifest of ${what} is malformed: it needs schemaVersion 2, a config and sha256 layer descriptors; the registry holds a broken image, push it again`);
  }
  return m as ImageManifest;
}

function parseIndex(json: unknown, what: string): ImageIndex {
  const ix = json as Partial<ImageIndex>;
  if (ix.schemaVersion !== 2 || !Array.isArray(ix.manifests) || !ix.manifests.every(isDescriptor)) {
    throw new DataLoss(`image index of ${what} is malformed: it needs schemaVersion 2 and sha256 manifest descriptors; the registry holds a broken image, push it again`);
  }
  return ix as ImageIndex;
}

// --- platforms, after containerd's platforms package (Normalize, Only) ---

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function normalizePlatform(p: Platform): Required<Platform> {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  if (/^\d+$/.test(variant)) variant = `v${variant}`;
  switch (architecture) {
    case 'i386':
      architecture = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === 'v8' || variant === '8') variant = '';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '') variant = 'v7';
      break;
  }
  return { os, architecture, variant };
}

/** What a `want` host runs, best first: an arm v7 host also runs v6 and v5; amd64 v3 also v2 and v1. */
function acceptable(want: Platform): Required<Platform>[] {
  const n = normalizePlatform(want);
  const down = (from: number, to: number): string[] => Array.from({ length: Math.max(0, from - to + 1) }, (_, i) => `v${from - i}`);
  const m = /^v(\d+)$/.exec(n.variant);
  if (n.architecture === 'arm' && m) return down(Number(m[1]), 5).map((variant) => ({ ...n, variant }));
  // amd64's baseline (v1) is normalized to no variant.
  if (n.architecture === 'amd64' && m) return [...down(Number(m[1]), 2), ''].map((variant) => ({ ...n, variant }));
  return [n];
}

/** The manifest in an index for `platform`, preferring the closest variant; null when none fits. */
export function choosePlatform(manifests: Descriptor[], platform: Platform): Descriptor | null {
  for (const want of acceptable(platform)) {
    const hit = manifests.find((d) => {
      if (!d.platform) return false;
      const got = normalizePlatform(d.platform);
      return got.os === want.os && got.architecture === want.architecture && got.variant === want.variant;
    });
    if (hit) return hit;
  }
  return null;
}
