/** What the effects need from the host, built once in bin/ from the config. */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { InvalidArgument } from '../errors/catalogue.js';
import { OciRuntime } from '../runtime/oci-runtime.js';
import type { Faults } from './faults.js';
import type { Cni } from '../network/cni.js';

export interface Host {
  config: Config;
  logger: Logger;
  faults: Faults;
  /** The shared read-only rootfs of every pause container. */
  pauseRootfs: string;
  /** The lowest oom_score_adj this host lets us give (see runtime/oom.ts). */
  oomScoreFloor: number;
  /** Pod networking through the CNI plugins. */
  cni: Cni;
  /** The pod CIDR UpdateRuntimeConfig last gave ('' until then). */
  podCidr: () => string;
}

/** The runtime for a handler; an unknown handler is the caller's error (INVALID_ARGUMENT). */
export function runtimeForHandler(config: Config, handler: string): OciRuntime {
  const name = handler || config.defaultRuntimeHandler;
  const entry = config.runtimeHandlers[name];
  if (!entry) {
    const known = Object.keys(config.runtimeHandlers).join(', ');
    throw new InvalidArgument(`unknown runtime handler "${name}": this node has ${known}`);
  }
  return runtimeAt(config, name, entry.path);
}

/** The runtime a pod was created with, even if the config has changed since. */
export function runtimeAt(config: Config, handler: string, path: string): OciRuntime {
  return new OciRuntime(path, join(config.runDir, 'runtime', handler), config.cgroupDriver === 'systemd');
}
