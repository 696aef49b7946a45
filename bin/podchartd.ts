/**
 * podchartd: builds the one logger, store, host and supervisor (no module-level singletons),
 * restores every pod, then serves CRI on the socket. SIGTERM/SIGINT: stop serving, let effects in
 * flight settle, exit; pods and conmon keep running, and the next start restores them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino, { type Logger } from 'pino';
import { loadConfig, parseArgs, type Config } from '../config/config.js';
import { Store } from '../storage/store.js';
import { Supervisor } from '../actors/supervisor.js';
import { HistorySweep } from '../actors/history-sweep.js';
import { faultsFromEnv } from '../actors/faults.js';
import { NetworkSettings, type Deps } from '../actors/deps.js';
import { Causes } from '../actors/cause.js';
import { ensurePauseRootfs } from '../runtime/pause-rootfs.js';
import { oomScoreFloor } from '../runtime/oom.js';
import { buildServer, listen } from '../cri/server.js';
import { censorChildBindings, LOG_FORMATTERS } from '../cri/call-log.js';
import { ContentStore } from '../images/content-store.js';
import { LayerStore } from '../images/layer-store.js';
import { RegistryClient } from '../images/registry/client.js';
import { ImageService } from '../images/image-service.js';
import { hostPlatform } from '../images/platform.js';
import { acquireDaemonLock, LOCK_FILE } from './daemon-lock.js';
import { tightenState } from './state-modes.js';
import { PRIVATE_DIR } from '../host/private-modes.js';
import { ContainerService } from '../actors/container-service.js';
import { SandboxService } from '../actors/sandbox-service.js';
import { Cni } from '../network/cni.js';
import { Metrics } from '../inspector/metrics.js';
import { startInspector } from '../inspector/server.js';
import { StreamingServer } from '../streaming/server.js';
import { readTokenFile } from '../inspector/access.js';
import { startSpawner } from '../host/spawner.js';
import { observeSteps } from '../host/steps.js';
import { eventLoopGauge, eventLoopUtilizationGauge } from '../inspector/event-loop.js';

function hostHasAppArmor(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

export const DB_FILE = 'podchart.db';

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) return (JSON.parse(readFileSync(candidate, 'utf8')) as { version: string }).version;
    dir = dirname(dir);
  }
  return '0.0.0';
}

function buildLogger(config: Config): Logger {
  if (config.logPretty) {
    return censorChildBindings(pino({ level: config.logLevel, formatters: LOG_FORMATTERS, transport: { target: 'pino-pretty', options: { colorize: false } } }));
  }
  // Synchronous writes: the last lines before a crash (or a kill -9) are the ones an operator needs.
  return censorChildBindings(pino({ level: config.logLevel, formatters: LOG_FORMATTERS }, pino.destination({ dest: 1, sync: true })));
}

async function main(): Promise<void> {
  const config = loadConfig(parseArgs(process.argv.slice(2)));
  const logger = buildLogger(config);
  // Ours alone (issue 11, item 4): nobody else may traverse to a layer's setuid binaries or the db.
  for (const dir of [config.rootDir, config.runDir]) mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
  // A socket placed outside runDir: its dir only needs to let the socket's group reach it (0660).
  mkdirSync(dirname(config.socket), { recursive: true, mode: 0o711 });
  const releaseLock = acquireDaemonLock(join(config.runDir, LOCK_FILE));
  const version = packageVersion();
  // Forked now, while the daemon is small: every program it runs is started from there.
  startSpawner();

  const store = new Store(join(config.rootDir, DB_FILE), { historyPerActor: config.historyPerActor });
  const floor = oomScoreFloor();
  const metrics = new Metrics();
  metrics.addGauge(eventLoopGauge());
  metrics.addGauge(eventLoopUtilizationGauge());
  if (floor > config.pauseOomScoreAdj) {
    logger.info({ requested: config.pauseOomScoreAdj, floor }, 'no CAP_SYS_RESOURCE: oom_score_adj of pods clamped to the daemon\'s own');
  }

  // How long each step of the start took (ms), in the readiness line: a slow restart says why.
  const startup: Record<string, number> = { node: Math.round(performance.now()) };
  let phase = performance.now();
  const lap = (what: string): void => {
    startup[what] = Math.round(performance.now() - phase);
    phase = performance.now();
  };
  const imageRoot = join(config.rootDir, 'images');
  const content = new ContentStore(join(imageRoot, 'content'));
  await content.cleanIngest(); // temp files of pulls a crash cut off
  const layers = new LayerStore(join(imageRoot, 'layers'));
  await layers.sweep(); // layers a crash left half unpacked or half deleted
  lap('images');
  const images = new ImageService({
    store,
    content,
    layers,
    registry: new RegistryClient(config.registries, logger.child({ component: 'registry' })),
    logger: logger.child({ component: 'images' }),
    platform: hostPlatform(),
    limits: { maxLayers: config.maxImageLayers, layerConcurrency: config.pullLayerConcurrency, reserveBytes: config.imageFsReserveBytes, progressTimeoutMs: config.imagePullProgressTimeoutMs },
    onPulled: (bytes, seconds) => {
      metrics.pullBytes.inc({}, bytes);
      metrics.pullSeconds.observe({}, seconds);
    },
  });

  // The one Deps (issue 13, item 5): built here, passed down, never changed after.
  const deps: Deps = {
    config,
    logger,
    store,
    faults: faultsFromEnv(process.env, (point) => logger.warn({ point }, 'fault point reached: killing the daemon')),
    causes: new Causes(),
    pauseRootfs: await ensurePauseRootfs(join(config.rootDir, 'pause'), config.catatonitPath),
    oomScoreFloor: floor,
    cni: new Cni({
      confDir: config.cniConfDir,
      binDirs: config.cniBinDirs,
      cacheDir: config.cniCacheDir,
      timeoutMs: config.cniTimeoutMs,
      logger: logger.child({ component: 'cni' }),
    }),
    network: new NetworkSettings(),
    images,
    cgroupV2: existsSync('/sys/fs/cgroup/cgroup.controllers'),
    hostHasAppArmor: hostHasAppArmor(),
    onEffect: (effect, seconds, ok) => metrics.effectSeconds.observe({ effect, result: ok ? 'ok' : 'error' }, seconds),
  };
  // Every program, wait and commit, filed under the call it served ("RunPodSandbox#12" →
  // RunPodSandbox), or restore and the exit watches: where the bench says the time goes.
  observeSteps((step, cause) => {
    const rpc = (cause ?? deps.causes.current())?.split('#')[0];
    return rpc ? (ms) => metrics.stepSeconds.observe({ rpc, step }, ms / 1000) : undefined;
  });
  const supervisor = new Supervisor(deps);
  supervisor.onTransition((t) => metrics.transitions.inc({ machine: t.kind, from: t.from ?? '', to: t.to }));
  lap('deps');

  // A socket left by a crash is replaced; a live daemon was refused by the lock above.
  if (existsSync(config.socket)) rmSync(config.socket, { force: true });
  // Exec's URLs point here: started before the CRI socket, so no Exec answers a URL nobody serves.
  const streaming = new StreamingServer(logger.child({ component: 'streaming' }));
  const streamingBase = await streaming.listen(config.streamingAddress);
  const server = buildServer({ streaming, metrics, network: deps.network, causes: deps.causes, supervisor, images, containers: new ContainerService(supervisor), sandboxes: new SandboxService(supervisor), imageRoot, config, logger, version });
  // Served before the restore: Version and Status answer at once (RuntimeReady=false, "Restoring"),
  // what reads pods gets UNAVAILABLE until restore is done (cri/server.ts DURING_RESTORE).
  const criSocket = await listen(server, config.socket, logger.child({ component: 'cri-socket' }));
  chmodSync(config.socket, 0o660);
  lap('socket');
  logger.info({ socket: config.socket }, 'CRI socket open; restoring pods and containers');
  // Before restore reads the tree, while the socket answers only what reads no pod files. Not
  // after the restore (tried, issue 14): the restore then holds the event loop from the moment
  // the socket opens, and Version waited ~1 s longer; this walk yields every few ms.
  const narrowed = await tightenState(config); // a tree an older podchart (or conmon, meanwhile) left open
  lap('modes');
  if (narrowed > 0) logger.info({ paths: narrowed }, 'state made private: dirs 0700, files 0600');

  const restoreStarted = performance.now();
  await supervisor.start();
  metrics.restoreSeconds.observe({}, (performance.now() - restoreStarted) / 1000);
  lap('restore');
  const historySweep = new HistorySweep({ store, retentionSeconds: config.removedHistoryRetentionSeconds, logger: logger.child({ component: 'history' }) });
  historySweep.start();
  // The inspector and /metrics, on loopback only unless the config says otherwise.
  const inspector = config.inspectorAddress
    ? await startInspector(config.inspectorAddress, { supervisor, metrics, streaming, logger: logger.child({ component: 'inspector' }) }, config.inspectorTokenFile ? readTokenFile(config.inspectorTokenFile) : null)
    : null;
  lap('serve');
  // The readiness line: logged once everything above is up.
  logger.info({ socket: config.socket, version, rootDir: config.rootDir, runDir: config.runDir, inspector: config.inspectorAddress || undefined, streaming: streamingBase, startupMs: startup }, 'podchartd serving CRI v1');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down; pods keep running');
    void criSocket.close();
    server.tryShutdown(() => undefined);
    inspector?.closeAllConnections();
    inspector?.close();
    void streaming
      .close()
      .then(() => supervisor.shutdown())
      .catch((err: unknown) => logger.error({ err }, 'shutdown'))
      .finally(() => {
        historySweep.stop();
        store.close();
        rmSync(config.socket, { force: true });
        releaseLock();
        logger.flush?.();
        process.exit(0);
      });
  };
  // A bug in one effect must not take every pod's runtime down with it: log it loudly, keep serving.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  // A throw nothing caught leaves no state we can vouch for: fail closed. The pods run on under
  // conmon, and the next start's restore repairs whatever was in flight.
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception: exiting, the next start restores every actor');
    logger.flush?.();
    process.exit(70);
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`podchartd: ${message}\n`);
  process.exit(1);
});
