/**
 * The types a pod's network is described by, and the per-pod record of the CNI config and result
 * (`<cacheDir>/<containerId>.json`, as libcni keeps /var/lib/cni/results). Written atomically:
 * DEL after a crash or a conf dir change must find the config ADD used (seed 004: the record of
 * work in progress is what lets teardown finish).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EffectFailed } from '../errors/catalogue.js';
import type { NetworkConfigList } from './cni-config.js';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  /** '' for every host address. */
  hostIp: string;
}

export interface DnsConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

/** The bandwidth plugin's runtimeConfig: rates in bits per second, bursts in bits. */
export interface BandwidthConfig {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** The ids kubelet knows the pod by, passed to plugins in CNI_ARGS. */
export interface PodRef {
  podName: string;
  podNamespace: string;
  podUid: string;
}

export interface PodNetwork extends PodRef {
  /** The sandbox id: CNI_CONTAINERID, and the key of IPAM leases and portmap rules. */
  containerId: string;
  netnsPath: string;
  ifName: string;
  portMappings: PortMapping[];
  dns?: DnsConfig;
  bandwidth?: BandwidthConfig;
  /** The node's pod CIDR(s), comma-separated for dual stack; for plugins with the ipRanges capability. */
  podCidr?: string;
}

/** A CNI result (spec v1.0.0 "Success"; 0.3.x/0.4.0 add `version` to each ip). */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; mtu?: number; sandbox?: string; socketPath?: string; pciID?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: '4' | '6' }[];
  routes?: { dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/** What `<cacheDir>/<containerId>.json` holds. */
export interface CacheEntry {
  kind: 'podchart-cni';
  version: 1;
  containerId: string;
  ifName: string;
  netnsPath: string;
  pod: PodRef;
  /** The runtime data runtimeConfig is built from; CHECK (portmap) and DEL need it again. */
  runtime: Pick<PodNetwork, 'portMappings' | 'dns' | 'bandwidth' | 'podCidr'>;
  file: string | null;
  config: NetworkConfigList;
  /** null while ADD is in progress (or was interrupted). */
  result: CniResult | null;
}

export class CniCache {
  private readonly dir: string;
  private readonly logger: Logger | undefined;

  constructor(dir: string, logger?: Logger) {
    this.dir = dir;
    this.logger = logger;
  }

  private file(containerId: string): string {
    return join(this.dir, `${containerId}.json`);
  }

  async read(containerId: string): Promise<CacheEntry | null> {
    let text: string;
    try {
      text = await readFile(this.file(containerId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new EffectFailed(`cannot read the CNI cache of ${containerId}: ${(err as Error).message}`);
    }
    try {
      const entry = JSON.parse(text) as Partial<CacheEntry>;
      if (entry.kind !== 'podchart-cni' || entry.version !== 1 || !entry.config) throw new Error('unknown format');
      return entry as CacheEntry;
    } catch (err) {
      // Written atomically, so this is damage from outside; DEL falls back to the current config.
      this.logger?.warn({ sandboxId: containerId, err }, 'CNI cache unreadable; ignoring it');
      return null;
    }
  }

  /** temp file, fsync, rename, fsync the dir: a crash leaves the old entry or the new one. */
  async write(entry: CacheEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(entry.containerId);
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(entry, null, 2));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new EffectFailed(`cannot write the CNI cache of ${entry.containerId}: ${(err as Error).message}`);
    }
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async remove(containerId: string): Promise<void> {
    await rm(this.file(containerId), { force: true });
  }
}
