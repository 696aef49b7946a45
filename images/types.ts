/**
 * The image service's shared vocabulary: references, registry config, OCI/Docker manifests, and the
 * contracts between the registry client, the content store, the layer store and the rootfs code.
 */

/** A normalized image reference: docker.io/library/busybox:latest or host/repo@sha256:…. */
export interface ImageReference {
  /** Registry host as written in the reference, normalized: "docker.io", "127.0.0.1:5000". */
  domain: string;
  /** Repository path: "library/busybox". */
  path: string;
  tag: string | null;
  digest: string | null;
  /** The canonical string: domain/path[:tag][@digest]. */
  full: string;
  /** domain/path, the repo part of repo tags and repo digests. */
  name: string;
}

/** Credentials as CRI's AuthConfig carries them (any one way is enough). */
export interface Credentials {
  username?: string;
  password?: string;
  /** base64("user:password") */
  auth?: string;
  /** An OAuth2 refresh token for the token endpoint. */
  identityToken?: string;
  /** A bearer token to send as is. */
  registryToken?: string;
  /**
   * CRI's server_address: the one registry host these are for ("registry.example.com:5000",
   * "https://index.docker.io/v1/", kubelet's "*.example.com"). Empty: the image's own registry.
   */
  serverAddress?: string;
}

export interface RegistryHostConfig {
  /** Endpoints tried in order before the origin, e.g. "http://127.0.0.1:5000". Repository path kept. */
  mirrors?: string[];
  /** Plain http (and no TLS verification) allowed for this host. */
  insecure?: boolean;
  /** Credentials used when the CRI request carries none. */
  auth?: Credentials;
}

export interface RegistriesConfig {
  /** Per registry host ("docker.io", "registry.k8s.io", "127.0.0.1:5000"). */
  hosts: Record<string, RegistryHostConfig>;
  /** Hosts allowed over plain http without an entry in `hosts`: loopback by default. */
  insecureHosts: string[];
  /** Optional JSON file { "<host>": Credentials } read at each pull. */
  credentialsFile: string | null;
  /** Bound on each registry request (connect + headers; blobs stream under an idle timeout). */
  requestTimeoutMs: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/** The parts of an OCI image config podchart uses. */
export interface ImageConfigFile {
  architecture: string;
  os: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: unknown[];
}

/** Where a manifest was found, so blobs are fetched from the same place. */
export interface Endpoint {
  /** "https://registry-1.docker.io" or "http://127.0.0.1:5000". */
  base: string;
  /** The repository path on that endpoint. */
  repository: string;
  /** True when this is a mirror rather than the origin. */
  mirror: boolean;
  /**
   * The registry host the image reference names ("docker.io", "127.0.0.1:5000"): the host CRI
   * credentials without a server_address belong to, mirror or not.
   */
  registry: string;
}

export interface ResolvedImage {
  endpoint: Endpoint;
  /** Digest of what the reference named (an index or a manifest): the repo digest. */
  repoDigest: string;
  /** Digest of the platform manifest used. */
  manifestDigest: string;
  manifest: ImageManifest;
  /** Raw bytes of the platform manifest (and of the index, when there was one), to store verbatim. */
  manifestBytes: Buffer;
  indexBytes: Buffer | null;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
