/**
 * Pod networking through CNI: ADD a pod's netns to the network of the first valid config, DEL it
 * again, CHECK it (CNI spec v1.0.0, "Network configuration lists"), as libcni does for containerd
 * and CRI-O.
 *
 * Assumptions teardown relies on (seed 003: setup and teardown mirror each other; seed 004: a
 * delete in progress is recorded before it starts, so a crash mid-way is finished, not lost):
 * - The config and ids are cached in `<cacheDir>/<containerId>.json` BEFORE the first plugin runs
 *   (result null), and the final result is cached before add() returns. DEL therefore always uses
 *   the config ADD used, even if the conf dir changed or the daemon died mid-ADD.
 * - DEL is idempotent: plugins must tolerate missing state (spec, "DEL"); a netns that is gone is
 *   passed as an empty CNI_NETNS so IPAM still releases the address, keyed by container id.
 * - The cache file goes only when every plugin's DEL succeeded, so a failed DEL can be retried.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { DeadlineExceeded, EffectFailed, InvalidArgument, NotFound, Unavailable } from '../errors/catalogue.js';
import { findPlugin, loadNetworkConfig, networkReady, type LoadedNetworkConfig, type NetworkConfigList, type NetworkReadiness, type PluginConfig } from './cni-config.js';
import { CniPluginTimeout, invokePlugin, type CniCommand } from './cni-exec.js';
import { CniCache, type CacheEntry, type CniResult, type PodNetwork, type PodRef } from './cni-cache.js';
import { isMounted } from '../host/mounts.js';

export type { NetworkConfigList, PluginConfig } from './cni-config.js';
export type { BandwidthConfig, CniResult, DnsConfig, PodNetwork, PodRef, PortMapping } from './cni-cache.js';

export interface CniOptions {
  confDir: string;
  binDirs: string[];
  /** Put it on persistent storage: host-local leases outlive a reboot, and so must their config. */
  cacheDir: string;
  /** Bound on each plugin invocation. */
  timeoutMs: number;
  logger?: Logger;
}

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function requireContainerId(id: string): void {
  if (!SAFE_ID.test(id)) throw new InvalidArgument(`CNI container id ${JSON.stringify(id)} must match ${SAFE_ID.source}`);
}

/** CNI_ARGS is `K=V;K=V`: a value with `;` or `=` would forge another key. */
export function cniArgs(containerId: string, pod: PodRef | null): string {
  const pairs: [string, string][] = [['IgnoreUnknown', '1']];
  if (pod) {
    pairs.push(['K8S_POD_NAMESPACE', pod.podNamespace], ['K8S_POD_NAME', pod.podName], ['K8S_POD_INFRA_CONTAINER_ID', containerId], ['K8S_POD_UID', pod.podUid]);
  }
  for (const [k, v] of pairs) {
    if (/[;=\s]/.test(v)) throw new InvalidArgument(`CNI_ARGS ${k} ${JSON.stringify(v)} must not contain ';', '=' or spaces`);
  }
  return pairs.map(([k, v]) => `${k}=${v}`).join(';');
}

/** runtimeConfig carries only what the plugin declared it accepts (spec, "Dynamic plugin-specific fields"). */
export function runtimeConfigFor(plugin: PluginConfig, rt: CacheEntry['runtime']): Record<string, unknown> | null {
  const caps = plugin.capabilities ?? {};
  const rc: Record<string, unknown> = {};
  // CRI port mappings without a host port are informational only (containerd skips them too).
  const mappings = rt.portMappings.filter((m) => m.hostPort > 0);
  if (caps.portMappings === true && mappings.length > 0) {
    rc.portMappings = mappings.map((m) => ({
      hostPort: m.hostPort,
      containerPort: m.containerPort,
      protocol: m.protocol,
      ...(m.hostIp === '' ? {} : { hostIP: m.hostIp }),
    }));
  }
  if (caps.dns === true && rt.dns) rc.dns = { servers: rt.dns.servers, searches: rt.dns.searches, options: rt.dns.options };
  if (caps.bandwidth === true && rt.bandwidth) rc.bandwidth = { ...rt.bandwidth };
  if (caps.ipRanges === true && rt.podCidr) {
    const cidrs = rt.podCidr.split(',').map((c) => c.trim()).filter((c) => c !== '');
    if (cidrs.length > 0) rc.ipRanges = cidrs.map((subnet) => [{ subnet }]);
  }
  return Object.keys(rc).length > 0 ? rc : null;
}

/** What a plugin reads on stdin: its own config with the list's name and version (libcni buildOneConfig). */
function pluginStdin(list: NetworkConfigList, plugin: PluginConfig, rt: CacheEntry['runtime'], prevResult: CniResult | null): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  delete conf.runtimeConfig; // only the runtime sets it
  if (prevResult) conf.prevResult = prevResult;
  const rc = runtimeConfigFor(plugin, rt);
  if (rc) conf.runtimeConfig = rc;
  return conf;
}

/** `a >= b` for dotted versions. */
function versionAtLeast(a: string, b: string): boolean {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function asResult(plugin: string, value: unknown, fallback: CniResult | null, cniVersion: string): CniResult {
  if (value === null) {
    // An empty answer from a chained plugin: the spec wants prevResult echoed; be lenient.
    return fallback ?? { cniVersion };
  }
  if (typeof value !== 'object' || Array.isArray(value)) throw new EffectFailed(`CNI plugin "${plugin}" ADD returned a non-object result`);
  const r = value as Record<string, unknown>;
  if (r.ips !== undefined && !Array.isArray(r.ips)) throw new EffectFailed(`CNI plugin "${plugin}" ADD returned "ips" that is not a list`);
  if (r.interfaces !== undefined && !Array.isArray(r.interfaces)) throw new EffectFailed(`CNI plugin "${plugin}" ADD returned "interfaces" that is not a list`);
  return { ...(r as unknown as CniResult), cniVersion: typeof r.cniVersion === 'string' ? r.cniVersion : cniVersion };
}

/**
 * The pod's IPs from a result: the first IPv4 as primary (else the first IPv6), the rest in order.
 * Prefix lengths stripped; loopback addresses (a `loopback` plugin's result) skipped.
 */
export function podIps(result: CniResult | null): { ip: string; additional: string[] } {
  const all = (result?.ips ?? [])
    .map((i) => i.address.split('/')[0] ?? '')
    .filter((a) => isIP(a) !== 0 && !a.startsWith('127.') && a !== '::1');
  const unique = [...new Set(all)];
  const primary = unique.find((a) => isIP(a) === 4) ?? unique[0] ?? '';
  return { ip: primary, additional: unique.filter((a) => a !== primary) };
}

export class Cni {
  private readonly opts: CniOptions;
  private readonly cache: CniCache;

  constructor(opts: CniOptions) {
    this.opts = opts;
    this.cache = new CniCache(opts.cacheDir, opts.logger);
  }

  /** The current config of the conf dir (re-read each call). */
  loadConfig(): Promise<LoadedNetworkConfig> {
    return loadNetworkConfig(this.opts.confDir, this.opts.binDirs);
  }

  /** The CRI NetworkReady condition. */
  async status(): Promise<NetworkReadiness> {
    return networkReady(await this.loadConfig());
  }

  /**
   * ADD the pod to the network, plugin by plugin with prevResult chaining. On a failure, the
   * plugins run so far (the failing one included: it may have half-applied) are DELeted in reverse
   * and the error names the plugin. Repeating add() for a container whose ADD completed returns the
   * cached result; one whose ADD was interrupted is torn down first, then added afresh.
   */
  async add(pod: PodNetwork): Promise<CniResult> {
    requireContainerId(pod.containerId);
    const args = cniArgs(pod.containerId, pod);
    const log = this.opts.logger?.child({ sandboxId: pod.containerId });

    const cached = await this.cache.read(pod.containerId);
    if (cached?.result && cached.netnsPath === pod.netnsPath) {
      log?.info('CNI ADD already done; returning the cached result');
      return cached.result;
    }
    if (cached) {
      log?.warn('an earlier CNI ADD did not complete; tearing it down first');
      await this.del(pod.containerId, cached.netnsPath, cached.pod);
    }

    const loaded = await this.loadConfig();
    if (!loaded.config) throw new Unavailable(`network not ready: ${networkReady(loaded).message}`);
    const list = loaded.config;
    const entry: CacheEntry = {
      kind: 'podchart-cni',
      version: 1,
      containerId: pod.containerId,
      ifName: pod.ifName,
      netnsPath: pod.netnsPath,
      pod: { podName: pod.podName, podNamespace: pod.podNamespace, podUid: pod.podUid },
      runtime: { portMappings: pod.portMappings, dns: pod.dns, bandwidth: pod.bandwidth, podCidr: pod.podCidr },
      file: loaded.file,
      config: list,
      result: null,
    };
    // Recorded before any effect, so a crash mid-ADD is torn down with this very config.
    await this.cache.write(entry);

    let result: CniResult | null = null;
    for (const [i, plugin] of list.plugins.entries()) {
      try {
        const out = await this.invoke('ADD', plugin, list, entry, pod.netnsPath, args, result);
        result = asResult(plugin.type, out, result, list.cniVersion);
      } catch (err) {
        const rollback = await this.runDel(list.plugins.slice(0, i + 1).reverse(), list, entry, pod.netnsPath, args, result);
        if (rollback.length === 0) await this.cache.remove(pod.containerId);
        const reason = err instanceof Error ? err.message : String(err);
        const where = `CNI ADD of network "${list.name}" for ${pod.containerId} failed at plugin "${plugin.type}" (${i + 1} of ${list.plugins.length})`;
        const undo = rollback.length === 0 ? 'rolled back' : `rollback failed, DEL will be retried: ${rollback.map((e) => e.message).join('; ')}`;
        const message = `${where}: ${reason}; ${undo}`;
        log?.warn({ err }, message);
        if (err instanceof CniPluginTimeout) throw new DeadlineExceeded(message);
        throw new EffectFailed(message, { cause: err });
      }
    }
    const final = result ?? { cniVersion: list.cniVersion };
    entry.result = final;
    await this.cache.write(entry);
    log?.info({ network: list.name, ips: podIps(final) }, 'CNI ADD done');
    return final;
  }

  /**
   * DEL the pod from the network, plugins in reverse, with the cached config and result (the
   * current config when nothing is cached). Every plugin is tried; the errors are thrown together.
   */
  async del(containerId: string, netnsPath: string | null, pod?: PodRef): Promise<void> {
    requireContainerId(containerId);
    const log = this.opts.logger?.child({ sandboxId: containerId });
    const cached = await this.cache.read(containerId);
    let list = cached?.config ?? null;
    if (!list) {
      list = (await this.loadConfig()).config;
      if (!list) {
        // Nothing recorded and nothing configured: there is no network this pod can be in.
        log?.warn('CNI DEL skipped: no cached config for this pod and no CNI config now');
        return;
      }
    }
    const podRef = pod ?? cached?.pod ?? null;
    const entry: CacheEntry = cached ?? {
      kind: 'podchart-cni',
      version: 1,
      containerId,
      ifName: 'eth0',
      netnsPath: netnsPath ?? '',
      pod: podRef ?? { podName: '', podNamespace: '', podUid: '' },
      runtime: { portMappings: [] },
      file: null,
      config: list,
      result: null,
    };
    const netns = await usableNetns(netnsPath);
    const errors = await this.runDel([...list.plugins].reverse(), list, entry, netns, cniArgs(containerId, podRef), entry.result);
    if (errors.length > 0) {
      const message = `CNI DEL of network "${list.name}" for ${containerId} failed: ${errors.map((e) => e.message).join('; ')}`;
      log?.warn(message);
      throw new EffectFailed(message, { cause: errors[0] });
    }
    await this.cache.remove(containerId);
    log?.info({ network: list.name, netns: netns || null }, 'CNI DEL done');
  }

  /**
   * CHECK the pod's network against the cached result (CNI 0.4.0 and later; a no-op for older
   * versions and for lists with disableCheck). Throws at the first plugin that reports a problem.
   */
  async check(containerId: string, netnsPath: string, pod?: PodRef): Promise<void> {
    requireContainerId(containerId);
    const cached = await this.cache.read(containerId);
    if (!cached?.result) throw new NotFound(`no CNI result cached for ${containerId}: its network was never set up`);
    const list = cached.config;
    if (!versionAtLeast(list.cniVersion, '0.4.0') || list.disableCheck === true) return;
    const netns = await usableNetns(netnsPath);
    if (netns === '') throw new EffectFailed(`CNI CHECK for ${containerId}: network namespace ${netnsPath} is gone`);
    const args = cniArgs(containerId, pod ?? cached.pod);
    for (const plugin of list.plugins) {
      try {
        await this.invoke('CHECK', plugin, list, cached, netns, args, cached.result);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new EffectFailed(`CNI CHECK of network "${list.name}" for ${containerId}: ${reason}`, { cause: err });
      }
    }
  }

  /** The result of the completed ADD for this container, if any. */
  async cachedResult(containerId: string): Promise<CniResult | null> {
    requireContainerId(containerId);
    return (await this.cache.read(containerId))?.result ?? null;
  }

  /** The pod's IPs from a result; see the function podIps. */
  podIps(result: CniResult | null): { ip: string; additional: string[] } {
    return podIps(result);
  }

  /** DELs each plugin in the order given; returns the failures (none: all done). */
  private async runDel(
    plugins: PluginConfig[],
    list: NetworkConfigList,
    entry: CacheEntry,
    netns: string,
    args: string,
    prevResult: CniResult | null,
  ): Promise<Error[]> {
    const errors: Error[] = [];
    // CNI 0.4.0+: DEL gets the ADD result as prevResult; older versions got none.
    const prev = versionAtLeast(list.cniVersion, '0.4.0') ? prevResult : null;
    for (const plugin of plugins) {
      try {
        await this.invoke('DEL', plugin, list, entry, netns, args, prev);
      } catch (err) {
        errors.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return errors;
  }

  private async invoke(
    command: CniCommand,
    plugin: PluginConfig,
    list: NetworkConfigList,
    entry: CacheEntry,
    netns: string,
    args: string,
    prevResult: CniResult | null,
  ): Promise<unknown> {
    const pluginPath = await findPlugin(plugin.type, this.opts.binDirs);
    if (!pluginPath) throw new EffectFailed(`CNI plugin "${plugin.type}" not found in ${this.opts.binDirs.join(', ')}`);
    this.opts.logger?.debug({ sandboxId: entry.containerId, plugin: plugin.type, command, netns }, 'CNI plugin');
    return invokePlugin({
      command,
      pluginPath,
      type: plugin.type,
      containerId: entry.containerId,
      netns,
      ifName: entry.ifName,
      cniArgs: args,
      binDirs: this.opts.binDirs,
      stdin: pluginStdin(list, plugin, entry.runtime, prevResult),
      timeoutMs: this.opts.timeoutMs,
    });
  }

}

/** The netns path to hand a plugin: '' when it no longer is a namespace (DEL after a reboot or unmount). */
async function usableNetns(path: string | null): Promise<string> {
  if (!path || !existsSync(path)) return '';
  if (path.startsWith('/proc/')) return path;
  // An unmounted file left by pod stop (seed 003) is not a netns: bridge's DEL would fail on it.
  return (await isMounted(path)) ? path : '';
}
