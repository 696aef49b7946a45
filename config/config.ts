/**
 * Daemon configuration: embedded defaults that work on a fresh Debian machine, overridden by a
 * JSON config file, overridden by flags. Every key and its default is listed in README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';
import type { RegistriesConfig } from '../images/types.js';
import { isLoopbackHost, parseAddress } from './address.js';
import { MAX_TIMER_MS } from '../host/long-timer.js';

export interface RuntimeHandlerConfig {
  /** The OCI runtime binary: runc or crun (same CLI). */
  path: string;
}

export interface Config {
  /** The CRI socket kubelet and crictl dial. */
  socket: string;
  /** Persistent state: the database, pod files, the pause rootfs. */
  rootDir: string;
  /** Volatile state (tmpfs): runtime roots, bundles, exit files, the daemon's lock. */
  runDir: string;
  defaultRuntimeHandler: string;
  runtimeHandlers: Record<string, RuntimeHandlerConfig>;
  conmonPath: string;
  catatonitPath: string;
  cgroupDriver: 'cgroupfs' | 'systemd';
  /** oom_score_adj of every pause process, clamped to what the host allows. */
  pauseOomScoreAdj: number;
  /** Size of each pod's /dev/shm tmpfs. */
  shmSizeBytes: number;
  /** How long the pause process gets after SIGTERM before SIGKILL. */
  sandboxStopGraceSeconds: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Human-readable logs instead of JSON. */
  logPretty: boolean;
  /** Registry mirrors, insecure hosts and credentials (see README.md). */
  registries: RegistriesConfig;
  /** CNI network configs (.conf, .conflist, .json; the lowest file name wins). */
  cniConfDir: string;
  /** Where CNI plugins are looked for, in order. */
  cniBinDirs: string[];
  /** Each pod's CNI config and result, kept for DEL (survives daemon restarts). */
  cniCacheDir: string;
  /** Bound on each CNI plugin call. */
  cniTimeoutMs: number;
  /** How long conmon gets to report the pid of a container it creates; then all it started is killed. */
  conmonCreateTimeoutMs: number;
  /** host:port of the statechart inspector and /metrics, on loopback; "" switches it off. */
  inspectorAddress: string;
  /** A file (mode 0600) holding the bearer token the inspector then requires; needed off loopback. */
  inspectorTokenFile: string;
  /** host:port of the streaming server (Exec's URLs), on loopback; port 0 picks a free one. */
  streamingAddress: string;
  /** Transitions kept per actor in the database; the oldest are pruned (issue 12, item 8). */
  historyPerActor: number;
  /** How long a removed pod's or container's history stays viewable before it is dropped. */
  removedHistoryRetentionSeconds: number;
  /** A pull of an image with more layers is refused before any layer is fetched (issue 12, item 2). */
  maxImageLayers: number;
  /** Layers of one pull downloaded and unpacked at once. */
  pullLayerConcurrency: number;
  /** Disk a pull leaves free on the image filesystem: blobs plus unpacked layers must fit above it. */
  imageFsReserveBytes: number;
  /**
   * A pull whose bytes (downloaded or unpacked) do not grow for this long is cancelled with an
   * error: containerd's image_pull_progress_timeout (5 minutes there too). 0: never.
   */
  imagePullProgressTimeoutMs: number;
  /** Stats calls within this long of a container's last cgroup sample share it (actors/stats-sampler.ts). */
  statsCollectionPeriodMs: number;
  /** A container's writable-layer usage is walked again, in the background, once its last walk is this old. */
  writableLayerUsagePeriodMs: number;
  /**
   * Pods that share no pid namespace (kubelet's default, CONTAINER) run without a pause process,
   * as CRI-O's drop_infra_ctr: their ipc and uts namespaces are made and pinned by `unshare`
   * (runtime/ns-pin.ts). That is conmon and two runc runs fewer per pod (issue 14). On by default,
   * as in CRI-O; `--keep-infra-container` or `"dropInfraContainer": false` gives every pod a pause.
   */
  dropInfraContainer: boolean;
}

export const DEFAULT_CONFIG_PATH = '/etc/podchart/config.json';

export const DEFAULTS: Config = {
  socket: '/run/podchart/podchart.sock',
  rootDir: '/var/lib/podchart',
  runDir: '/run/podchart',
  defaultRuntimeHandler: 'runc',
  runtimeHandlers: {
    runc: { path: '/usr/sbin/runc' },
    crun: { path: '/usr/bin/crun' },
  },
  conmonPath: '/usr/bin/conmon',
  catatonitPath: '/usr/bin/catatonit',
  cgroupDriver: 'cgroupfs',
  pauseOomScoreAdj: -998,
  shmSizeBytes: 64 * 1024 * 1024,
  sandboxStopGraceSeconds: 10,
  logLevel: 'info',
  logPretty: false,
  registries: {
    hosts: {},
    // Plain http is allowed only here unless a host entry says `insecure`: loopback, any port.
    insecureHosts: ['127.0.0.1', 'localhost', '::1'],
    credentialsFile: null,
    requestTimeoutMs: 30_000,
  },
  cniConfDir: '/etc/cni/net.d',
  cniBinDirs: ['/opt/cni/bin', '/usr/lib/cni'],
  cniCacheDir: '/var/lib/podchart/cni',
  cniTimeoutMs: 60_000,
  conmonCreateTimeoutMs: 30_000,
  inspectorAddress: '127.0.0.1:9680',
  inspectorTokenFile: '',
  streamingAddress: '127.0.0.1:0',
  historyPerActor: 200,
  removedHistoryRetentionSeconds: 3600,
  maxImageLayers: 128,
  pullLayerConcurrency: 3,
  imageFsReserveBytes: 1024 * 1024 * 1024,
  imagePullProgressTimeoutMs: 5 * 60_000,
  statsCollectionPeriodMs: 1000,
  writableLayerUsagePeriodMs: 10_000,
  dropInfraContainer: true,
};

/** Bounds of the history keys: enough for any debugging session, never an unbounded table. */
export const MAX_HISTORY_PER_ACTOR = 100_000;
export const MAX_REMOVED_HISTORY_RETENTION_SECONDS = 30 * 86_400;
/** overlayfs stacks at most 500 lower dirs (OVL_MAX_STACK): an image with more could never be mounted. */
export const MAX_IMAGE_LAYERS = 500;
export const MAX_PULL_LAYER_CONCURRENCY = 64;

const FLAGS: Record<string, keyof Config> = {
  '--socket': 'socket',
  '--root': 'rootDir',
  '--run': 'runDir',
  '--default-runtime': 'defaultRuntimeHandler',
  '--conmon': 'conmonPath',
  '--catatonit': 'catatonitPath',
  '--cgroup-driver': 'cgroupDriver',
  '--log-level': 'logLevel',
  '--cni-conf-dir': 'cniConfDir',
  '--cni-cache-dir': 'cniCacheDir',
  '--inspector': 'inspectorAddress',
  '--streaming': 'streamingAddress',
};

export interface ParsedArgs {
  configPath: string;
  overrides: Partial<Config>;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  let configPath = process.env['PODCHART_CONFIG'] ?? DEFAULT_CONFIG_PATH;
  const overrides: Partial<Config> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new InvalidArgument(`flag ${flag} needs a value`);
      return v;
    };
    if (flag === '--config') configPath = value();
    else if (flag === '--pretty') overrides.logPretty = true;
    else if (flag === '--drop-infra-container') overrides.dropInfraContainer = true;
    else if (flag === '--keep-infra-container') overrides.dropInfraContainer = false;
    else if (flag === '--cni-bin-dir') overrides.cniBinDirs = value().split(':');
    else if (flag in FLAGS) (overrides as Record<string, unknown>)[FLAGS[flag] as string] = value();
    else throw new InvalidArgument(`unknown flag ${flag}; see README.md for the flags podchartd takes`);
  }
  return { configPath, overrides };
}

/** Defaults ← config file (if present) ← flags. Unknown keys in the file are an error, not ignored. */
export function loadConfig(args: ParsedArgs): Config {
  let fromFile: Partial<Config> = {};
  if (existsSync(args.configPath)) {
    try {
      fromFile = JSON.parse(readFileSync(args.configPath, 'utf8')) as Partial<Config>;
    } catch (err) {
      throw new InvalidArgument(`config file ${args.configPath} is not valid JSON: ${(err as Error).message}`);
    }
    for (const key of Object.keys(fromFile)) {
      if (!(key in DEFAULTS)) throw new InvalidArgument(`config file ${args.configPath}: unknown key "${key}"`);
    }
  }
  const config: Config = { ...DEFAULTS, ...fromFile, ...args.overrides };
  config.runtimeHandlers = { ...DEFAULTS.runtimeHandlers, ...(fromFile.runtimeHandlers ?? {}) };
  config.registries = { ...DEFAULTS.registries, ...(fromFile.registries ?? {}) };
  // The CNI cache lives with the rest of the persistent state unless placed elsewhere.
  if (fromFile.cniCacheDir === undefined && args.overrides.cniCacheDir === undefined) config.cniCacheDir = join(config.rootDir, 'cni');
  for (const key of Object.keys(fromFile.registries ?? {})) {
    if (!(key in DEFAULTS.registries)) throw new InvalidArgument(`config file ${args.configPath}: unknown key "registries.${key}"`);
  }
  if (!(config.defaultRuntimeHandler in config.runtimeHandlers)) {
    throw new InvalidArgument(`defaultRuntimeHandler "${config.defaultRuntimeHandler}" is not in runtimeHandlers`);
  }
  if (config.cgroupDriver !== 'cgroupfs' && config.cgroupDriver !== 'systemd') {
    throw new InvalidArgument(`cgroupDriver must be "cgroupfs" or "systemd", not "${String(config.cgroupDriver)}"`);
  }
  // Durations feed timers: a positive number that setTimeout can take (at most 24.8 days).
  const durations: [string, unknown, number][] = [
    ['cniTimeoutMs', config.cniTimeoutMs, 1],
    ['conmonCreateTimeoutMs', config.conmonCreateTimeoutMs, 1],
    ['registries.requestTimeoutMs', config.registries.requestTimeoutMs, 1],
    ['sandboxStopGraceSeconds', config.sandboxStopGraceSeconds, 1000],
    ['statsCollectionPeriodMs', config.statsCollectionPeriodMs, 1],
    ['writableLayerUsagePeriodMs', config.writableLayerUsagePeriodMs, 1],
  ];
  for (const [key, value, unitMs] of durations) {
    if (typeof value !== 'number' || !(value > 0) || value * unitMs > MAX_TIMER_MS) {
      throw new InvalidArgument(`${key} must be a positive number of ${unitMs === 1 ? 'milliseconds' : 'seconds'} up to ${Math.floor(MAX_TIMER_MS / unitMs)}, not ${JSON.stringify(value)}`);
    }
  }
  if (!Number.isInteger(config.historyPerActor) || config.historyPerActor < 1 || config.historyPerActor > MAX_HISTORY_PER_ACTOR) {
    throw new InvalidArgument(`historyPerActor must be a whole number from 1 to ${MAX_HISTORY_PER_ACTOR}, not ${JSON.stringify(config.historyPerActor)}`);
  }
  const retention = config.removedHistoryRetentionSeconds;
  if (typeof retention !== 'number' || !Number.isFinite(retention) || retention < 0 || retention > MAX_REMOVED_HISTORY_RETENTION_SECONDS) {
    throw new InvalidArgument(`removedHistoryRetentionSeconds must be a number of seconds from 0 to ${MAX_REMOVED_HISTORY_RETENTION_SECONDS} (30 days), not ${JSON.stringify(retention)}`);
  }
  const wholeNumbers: [string, unknown, number, number][] = [
    ['maxImageLayers', config.maxImageLayers, 1, MAX_IMAGE_LAYERS],
    ['pullLayerConcurrency', config.pullLayerConcurrency, 1, MAX_PULL_LAYER_CONCURRENCY],
    ['imageFsReserveBytes', config.imageFsReserveBytes, 0, Number.MAX_SAFE_INTEGER],
    ['imagePullProgressTimeoutMs', config.imagePullProgressTimeoutMs, 0, Number.MAX_SAFE_INTEGER],
  ];
  for (const [key, value, min, max] of wholeNumbers) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgument(`${key} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`);
    }
  }
  for (const key of ['logPretty', 'dropInfraContainer'] as const) {
    if (typeof config[key] !== 'boolean') throw new InvalidArgument(`${key} must be true or false, not ${JSON.stringify(config[key])}`);
  }
  // Both servers bind where they are told; a malformed address is refused here, before anything starts.
  if (config.inspectorAddress) {
    const { host } = parseAddress(String(config.inspectorAddress), 'inspectorAddress');
    // Context and history say what runs on the node: off loopback only behind a token.
    if (!isLoopbackHost(host) && !config.inspectorTokenFile) {
      throw new InvalidArgument(`inspectorAddress ${config.inspectorAddress} is not a loopback address: set inspectorTokenFile (a 0600 file holding a token) to serve the inspector there`);
    }
  }
  parseAddress(String(config.streamingAddress), 'streamingAddress');
  return config;
}
