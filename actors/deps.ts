/**
 * Everything the actors and their effects use, built once in bin/podchartd.ts and passed down
 * (issue 13, item 5). Nothing in it is set after construction; what the effects need of the actor
 * tree itself (a container's pod, the processes of running containers) they ask through Lookups,
 * which the supervisor answers.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { InvalidArgument } from '../errors/catalogue.js';
import { OciRuntime } from '../runtime/oci-runtime.js';
import type { Cni } from '../network/cni.js';
import type { ImageService } from '../images/image-service.js';
import type { Store } from '../storage/store.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import type { Faults } from './faults.js';
import type { EffectObserver } from './actor-util.js';
import type { Causes } from './cause.js';

export interface Deps {
  config: Config;
  logger: Logger;
  store: Store;
  faults: Faults;
  /** Which CRI call or watch set each actor's events off (the history's cause column). */
  causes: Causes;
  /** The shared read-only rootfs of every pause container. */
  pauseRootfs: string;
  /** The lowest oom_score_adj this host lets us give (see runtime/oom.ts). */
  oomScoreFloor: number;
  /** Pod networking through the CNI plugins. */
  cni: Cni;
  /** What UpdateRuntimeConfig set. */
  network: NetworkSettings;
  images: ImageService;
  cgroupV2: boolean;
  hostHasAppArmor: boolean;
  /** Told of every effect's duration (the daemon files them in /metrics); none in tests that do not ask. */
  onEffect?: EffectObserver;
}

/** What the container effects ask of the actor tree (the supervisor, which owns it, answers). */
export interface Lookups {
  /** The pod a container belongs to. */
  sandboxOf(sandboxId: string): SandboxContext | null;
  /** The process of a running container (for TARGET pid namespaces). */
  containerProcess(containerId: string): { pid: number; pidStartTime: string } | undefined;
  /** Image ids that containers not being removed run on: their data stays. */
  imagesInUse(): Set<string>;
}

/**
 * The pod CIDR kubelet gives with UpdateRuntimeConfig ('' until then): the one setting CRI changes
 * while the daemon runs. CNI ADD reads it for host-local ranges.
 */
export class NetworkSettings {
  private cidr = '';

  get podCidr(): string {
    return this.cidr;
  }

  setPodCidr(cidr: string): void {
    this.cidr = cidr;
  }
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
