/** Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
import { isIP } from 'node:net';
import { InvalidArgument } from '../errors/catalogue.js';
import { checkText, quote } from './validate.js';
import type { CriContext } from './context.js';
import { loadNetworkConfig, networkReady } from '../network/cni-config.js';

export async function version(_req: unknown, ctx: CriContext) {
  return { version: '0.1.0', runtimeName: 'podchart', runtimeVersion: ctx.version, runtimeApiVersion: 'v1' };
}

export async function status(req: { verbose: boolean }, ctx: CriContext) {
  // NetworkReady: a usable CNI config whose plugins are all present (read afresh: configs change).
  const network = networkReady(await loadNetworkConfig(ctx.config.cniConfDir, ctx.config.cniBinDirs));
  // A database that refuses writes: no pod can start or stop safely until it takes them again.
  const writeFailure = ctx.supervisor.writeFailure();
  const runtime = writeFailure
    ? { status: false, reason: 'StateDatabaseUnwritable', message: `podchart cannot write its state database: ${writeFailure}` }
    : ctx.supervisor.rootState() === 'RESTORING'
      ? { status: false, reason: 'Restoring', message: 'podchart is restoring its pods and containers after a restart' }
      : { status: true, reason: '', message: '' };
  return {
    status: {
      conditions: [
        { type: 'RuntimeReady', ...runtime },
        { type: 'NetworkReady', status: network.ready, reason: network.reason, message: network.message },
      ],
    },
    info: req.verbose ? { config: JSON.stringify(ctx.config) } : {},
    runtimeHandlers: Object.keys(ctx.config.runtimeHandlers).map((name) => ({
      name,
      features: { recursiveReadOnlyMounts: false, userNamespaces: false },
    })),
  };
}

export async function runtimeConfig(_req: unknown, ctx: CriContext) {
  return { linux: { cgroupDriver: ctx.config.cgroupDriver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' } };
}

export async function updateRuntimeConfig(req: { runtimeConfig: { networkConfig: { podCidr: string } | null } | null }, ctx: CriContext) {
  const cidr = checkPodCidr(req.runtimeConfig?.networkConfig?.podCidr ?? '');
  if (cidr !== ctx.network.podCidr) {
    ctx.logger.info({ podCidr: cidr }, 'pod CIDR updated');
    ctx.network.setPodCidr(cidr);
  }
  return {};
}

/**
 * The node's pod CIDR (one, or an IPv4 and an IPv6 one joined by ",", as kubelet sends for dual
 * stack): each an address and a prefix length that fits it. Empty clears it.
 */
export function checkPodCidr(value: string): string {
  checkText(value, 'RuntimeConfig.network_config.pod_cidr', 256);
  if (value === '') return value;
  for (const cidr of value.split(',')) {
    const [address = '', prefix = '', ...rest] = cidr.trim().split('/');
    const family = isIP(address);
    const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
    if (family === 0 || rest.length > 0 || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw new InvalidArgument(`RuntimeConfig.network_config.pod_cidr ${quote(cidr)} is not a CIDR such as "10.88.0.0/16"`);
    }
  }
  return value;
}
