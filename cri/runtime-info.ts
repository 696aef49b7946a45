/** Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
import type { CriContext } from './context.js';
import { loadNetworkConfig, networkReady } from '../network/cni-config.js';

export async function version(_req: unknown, ctx: CriContext) {
  return { version: '0.1.0', runtimeName: 'podchart', runtimeVersion: ctx.version, runtimeApiVersion: 'v1' };
}

export async function status(req: { verbose: boolean }, ctx: CriContext) {
  // NetworkReady: a usable CNI config whose plugins are all present (read afresh: configs change).
  const network = networkReady(await loadNetworkConfig(ctx.config.cniConfDir, ctx.config.cniBinDirs));
  return {
    status: {
      conditions: [
        { type: 'RuntimeReady', status: true, reason: '', message: '' },
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
  const cidr = req.runtimeConfig?.networkConfig?.podCidr ?? '';
  if (cidr !== ctx.runtimeConfig.podCidr) {
    ctx.logger.info({ podCidr: cidr }, 'pod CIDR updated');
    ctx.runtimeConfig.podCidr = cidr;
  }
  return {};
}
