/** Version, Status, RuntimeConfig, UpdateRuntimeConfig. */
import type { CriContext } from './context.js';

export async function version(_req: unknown, ctx: CriContext) {
  return { version: '0.1.0', runtimeName: 'podchart', runtimeVersion: ctx.version, runtimeApiVersion: 'v1' };
}

export async function status(req: { verbose: boolean }, ctx: CriContext) {
  return {
    status: {
      conditions: [
        { type: 'RuntimeReady', status: true, reason: '', message: '' },
        {
          // Until pod networking (CNI) lands, pods get a netns with loopback only.
          type: 'NetworkReady',
          status: false,
          reason: 'NetworkPluginNotReady',
          message: 'Network plugin returns error: podchart does not configure pod networks (CNI) yet',
        },
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
