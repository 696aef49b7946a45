/** What every CRI handler gets: the supervisor, the config, the logger of this call. */
import type { Logger } from 'pino';
import type { Supervisor } from '../actors/supervisor.js';
import type { Config } from '../config/config.js';
import type { ImageService } from '../images/image-service.js';
import type { ContainerService } from '../actors/container-service.js';
import type { SandboxService } from '../actors/sandbox-service.js';
import type { StreamingServer } from '../streaming/server.js';
import type { NetworkSettings } from '../actors/deps.js';
import type { StatsSampler } from '../actors/stats-sampler.js';

export interface CriContext {
  supervisor: Supervisor;
  images: ImageService;
  containers: ContainerService;
  sandboxes: SandboxService;
  /** Where the image store lives (ImageFsInfo's mountpoint). */
  imageRoot: string;
  config: Config;
  logger: Logger;
  /** Milliseconds left before the caller's deadline (a generous default when it set none). */
  timeoutMs: number;
  /** Settings UpdateRuntimeConfig gave us (the pod CIDR, for networking): the effects read them. */
  network: NetworkSettings;
  /** Where the stats calls get their counters (cri/stats.ts). */
  stats: StatsSampler;
  version: string;
  /** Where Exec parks its requests and gets their URLs; absent when the daemon serves no streams. */
  streaming?: StreamingServer;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CriContext) => Promise<Res>;
