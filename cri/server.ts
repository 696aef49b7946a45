/**
 * The gRPC adapter: runtime.v1.RuntimeService and ImageService on a unix socket. Every method of
 * the proto is served; those not built yet answer UNIMPLEMENTED with "not implemented yet: <Method>".
 * One wrapper (containerd's instrumented service) logs, applies the deadline and maps errors. It logs
 * what identifies each call (call-log.ts), never the request itself: requests carry credentials,
 * env values and exec arguments.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadCri } from '../proto/load.js';
import { NotImplemented, Unavailable } from '../errors/catalogue.js';
import type { CriContext, UnaryHandler } from './context.js';
import { toGrpcError } from './errors.js';
import type { Causes } from '../actors/cause.js';
import type { NetworkSettings } from '../actors/deps.js';
import { callFields } from './call-log.js';
import { runtimeConfig, status, updateRuntimeConfig, version } from './runtime-info.js';
import { runPodSandbox } from './sandbox-run.js';
import { stopPodSandbox } from './sandbox-stop.js';
import { removePodSandbox } from './sandbox-remove.js';
import { podSandboxStatus } from './sandbox-status.js';
import { updatePodSandboxResources } from './sandbox-update.js';
import { checkpointContainer, checkpointPod, restorePod } from './container-checkpoint.js';
import { listPodSandbox } from './sandbox-list.js';
import { portForward } from './sandbox-portforward.js';
import { createContainer } from './container-create.js';
import { removeContainer, startContainer, stopContainer } from './container-lifecycle.js';
import { containerStatus, listContainers } from './container-status.js';
import { attachHandler, execHandler, execSyncHandler, reopenContainerLog, updateContainerResources } from './container-exec.js';
import { getContainerEvents } from './container-events.js';
import { containerStats, listContainerStats, listPodSandboxStats, podSandboxStats, warmContainerStatsEncodings } from './stats.js';
import { StatsSampler } from '../actors/stats-sampler.js';
import { listMetricDescriptors, listPodSandboxMetrics } from './metrics.js';
import { acceptingEncoded } from './list-encoding.js';
import { pagesOf, STREAMED_LISTS } from './list-stream.js';
import type { Metrics } from '../inspector/metrics.js';
import type { Supervisor } from '../actors/supervisor.js';
import { pullImage } from './image-pull.js';
import { imageStatus } from './image-status.js';
import { listImages } from './image-list.js';
import { removeImage } from './image-remove.js';
import { imageFsInfo } from './image-fs-info.js';

const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Deadline used when the caller set none: long enough for a slow teardown. */
const DEFAULT_TIMEOUT_MS = 4 * 60_000;

/** Called every second by kubelet: logged at debug, not info. */
const POLLED = new Set(['Version', 'Status', 'ListPodSandbox', 'PodSandboxStatus', 'ListContainers', 'ContainerStatus',
  'ListImages', 'ImageStatus', 'ImageFsInfo', 'ListContainerStats', 'ListPodSandboxStats', 'RuntimeConfig',
  'ContainerStats', 'PodSandboxStats', 'ListMetricDescriptors', 'ListPodSandboxMetrics']);

/**
 * What the socket answers while restore runs (it serves as soon as it can, issue 14): what does
 * not read the pods and containers. Anything else gets UNAVAILABLE until restore is done: a
 * partial ListPodSandbox would tell kubelet that pods it sees no longer exist.
 */
const DURING_RESTORE = new Set(['Version', 'Status', 'RuntimeConfig', 'ListImages', 'ImageStatus', 'ImageFsInfo']);

// The handlers take the request as proto-loader decodes it; each declares the fields it reads.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table is heterogeneous by design
type AnyHandler = UnaryHandler<any, unknown>;

const RUNTIME_HANDLERS: Record<string, AnyHandler> = {
  Version: version,
  Status: status,
  RuntimeConfig: runtimeConfig,
  UpdateRuntimeConfig: updateRuntimeConfig,
  RunPodSandbox: runPodSandbox,
  StopPodSandbox: stopPodSandbox,
  RemovePodSandbox: removePodSandbox,
  PodSandboxStatus: podSandboxStatus,
  ListPodSandbox: listPodSandbox,
  PortForward: portForward,
  CreateContainer: createContainer,
  StartContainer: startContainer,
  StopContainer: stopContainer,
  RemoveContainer: removeContainer,
  ContainerStatus: containerStatus,
  ListContainers: listContainers,
  ExecSync: execSyncHandler,
  Exec: execHandler,
  Attach: attachHandler,
  UpdateContainerResources: updateContainerResources,
  ReopenContainerLog: reopenContainerLog,
  ContainerStats: containerStats,
  ListContainerStats: listContainerStats,
  PodSandboxStats: podSandboxStats,
  ListPodSandboxStats: listPodSandboxStats,
  UpdatePodSandboxResources: updatePodSandboxResources,
  CheckpointContainer: checkpointContainer,
  CheckpointPod: checkpointPod,
  RestorePod: restorePod,
  ListMetricDescriptors: listMetricDescriptors,
  ListPodSandboxMetrics: listPodSandboxMetrics,
};

/** Server-streaming methods: each writes to its call until the client goes away. */
const STREAM_HANDLERS: Record<string, (call: grpc.ServerWritableStream<unknown, unknown>, supervisor: Supervisor) => void> = {
  GetContainerEvents: getContainerEvents,
};

/** The RuntimeService methods podchart serves; every other one answers UNIMPLEMENTED. */
export const BUILT_RUNTIME_METHODS: readonly string[] = [
  ...Object.keys(RUNTIME_HANDLERS),
  ...Object.keys(STREAM_HANDLERS),
  ...Object.entries(STREAMED_LISTS).filter(([, s]) => s.service === 'runtimeService' && s.list in RUNTIME_HANDLERS).map(([name]) => name),
];

const IMAGE_HANDLERS: Record<string, AnyHandler> = {
  PullImage: pullImage,
  ImageStatus: imageStatus,
  ListImages: listImages,
  RemoveImage: removeImage,
  ImageFsInfo: imageFsInfo,
};

/** What the server needs: what each call's context carries, plus what it builds them from. */
export interface CriServerDeps extends Pick<CriContext, 'supervisor' | 'images' | 'containers' | 'sandboxes' | 'imageRoot' | 'config' | 'logger' | 'version' | 'streaming'> {
  metrics?: Metrics;
  /** Shared with the effects (Deps): UpdateRuntimeConfig's pod CIDR reaches CNI through it. */
  network: NetworkSettings;
  /** Tags every actor event sent while serving a call with the call (the inspector's "cause"). */
  causes: Causes;
}

function timeoutFrom(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  if (!Number.isFinite(at) || at <= 0) return DEFAULT_TIMEOUT_MS;
  return Math.max(1, at - Date.now());
}

export function buildServer(deps: CriServerDeps): grpc.Server {
  const cri = loadCri();
  // Requests up to kubelet's 16 MiB, as containerd and CRI-O accept; grpc-js alone would take 4 MiB.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES });
  const stats = new StatsSampler({
    supervisor: deps.supervisor,
    images: deps.images,
    driver: deps.config.cgroupDriver,
    periodMs: deps.config.statsCollectionPeriodMs,
    layerPeriodMs: deps.config.writableLayerUsagePeriodMs,
    logger: deps.logger.child({ component: 'stats' }),
    onRefreshed: warmContainerStatsEncodings,
  });
  deps.supervisor.onContainerEvent((event) => {
    if (event.type !== 'CONTAINER_CREATED_EVENT') return;
    const view = deps.supervisor.containerView(event.containerId);
    if (view) stats.primeLayer(view);
  });
  let seq = 0;
  const record = (method: string, code: string, ms: number, handlerMs: number): void => {
    // In labelNames' order: prom-client writes a series' labels in the order they were first given.
    const labels = { code, method };
    deps.metrics?.criCalls.inc(labels);
    deps.metrics?.criSeconds.observe(labels, ms / 1000);
    deps.metrics?.criHandlerSeconds.observe(labels, handlerMs / 1000);
  };

  /**
   * One call of a handler, as every unary method and every streamed list is served: refused while
   * restore runs (unless it reads nothing restore makes), logged, tagged with its cause, timed.
   * `reply` sends the handler's answer; it is timed as server time too (issue 14: a big List
   * reply's encoding is), apart from the handler alone (as a Go server's interceptor sees it).
   * `as`: the method whose rules it follows (a streamed list, its List method's: polled, and
   * answered during restore when that one is).
   */
  const serve = (method: string, as: string, call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, handler: AnyHandler | undefined, reply: (response: unknown) => void, fail: (err: Partial<grpc.ServiceError>) => void): void => {
    const callId = ++seq;
    // The call's logger is made when something logs: pino's child() runs the redaction over
    // its bindings, and a polled call at the default level logs nothing (issue 14).
    let callLogger: Logger | null = null;
    const logger = (): Logger => (callLogger ??= deps.logger.child({ rpc: method, call: callId }));
    const level = POLLED.has(as) ? 'debug' : 'info';
    const logged = deps.logger.isLevelEnabled(level);
    const started = performance.now();
    if (!handler) {
      logger().debug('not implemented');
      fail(toGrpcError(new NotImplemented(method)));
      return;
    }
    if (!DURING_RESTORE.has(as) && deps.supervisor.rootState() === 'RESTORING') {
      fail(toGrpcError(new Unavailable(`podchart is restoring its pods and containers after a restart; ${method} is answered once that is done (about a second per 200 pods): retry`)));
      return;
    }
    const ctx: CriContext = {
      supervisor: deps.supervisor,
      images: deps.images,
      containers: deps.containers,
      sandboxes: deps.sandboxes,
      imageRoot: deps.imageRoot,
      config: deps.config,
      get logger() {
        return logger();
      },
      timeoutMs: timeoutFrom(call),
      network: deps.network,
      stats,
      version: deps.version,
      ...(deps.streaming ? { streaming: deps.streaming } : {}),
    };
    if (logged) logger()[level](callFields(method, call.request), 'call');
    // Every actor event sent while serving this call is tagged with it (the inspector's "cause").
    deps.causes.with(`${method}#${callId}`, () => handler(call.request, ctx)).then(
      (response) => {
        const handlerMs = performance.now() - started;
        reply(response);
        const ms = performance.now() - started;
        if (logged) logger()[level]({ ms: Math.round(ms) }, 'ok');
        record(method, 'OK', ms, handlerMs);
      },
      (err: unknown) => {
        const mapped = toGrpcError(err);
        const ms = performance.now() - started;
        logger().warn({ code: mapped.code, err: mapped.details, ms: Math.round(ms) }, 'failed');
        record(method, grpc.status[mapped.code ?? grpc.status.UNKNOWN] ?? String(mapped.code), ms, ms);
        fail(mapped);
      },
    );
  };

  const implement = (service: grpc.ServiceDefinition, handlers: Record<string, AnyHandler>): grpc.UntypedServiceImplementation => {
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [method, def] of Object.entries(service)) {
      if (def.responseStream || def.requestStream) {
        const streamed = STREAMED_LISTS[method];
        const stream = STREAM_HANDLERS[method];
        impl[method] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
          if (streamed) {
            // The List method's own handler: the same filters and items, sent in pages.
            const send = (response: unknown): void => {
              for (const page of pagesOf(response, streamed)) call.write(page);
              call.end();
            };
            serve(method, streamed.list, call, handlers[streamed.list], send, (err) => call.emit('error', err));
            return;
          }
          if (!stream) {
            call.emit('error', toGrpcError(new NotImplemented(method)));
            return;
          }
          deps.logger.debug({ rpc: method }, 'stream opened');
          stream(call, deps.supervisor);
        };
        continue;
      }
      impl[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        serve(method, method, call, handlers[method], (response) => callback(null, response), (err) => callback(err));
      };
    }
    return impl;
  };

  // List handlers may answer with replies they encoded themselves (cri/list-encoding.ts).
  server.addService(acceptingEncoded(cri.runtimeService), implement(cri.runtimeService, RUNTIME_HANDLERS));
  server.addService(acceptingEncoded(cri.imageService), implement(cri.imageService, IMAGE_HANDLERS));
  return server;
}

export { listenUnix as listen } from './socket.js';
