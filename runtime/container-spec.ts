/**
 * The OCI spec of a pod's container, as containerd (internal/cri/server/container_create_linux.go)
 * and CRI-O build it. Pure: everything that needs the host (the user from the image's passwd, device
 * numbers, the seccomp file, the pause pid) is gathered by the caller and passed in, so the same
 * request gives the same spec and a retry rewrites the same config.json.
 */
import { posix } from 'node:path';
import { InvalidArgument, Refused } from '../errors/catalogue.js';
import { quote } from '../errors/quote.js';
import type { ImageConfigFile } from '../images/types.js';
import type { SandboxSpec } from '../machines/sandbox.types.js';
import type { ContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, NamespaceMode } from './cri-container-types.js';
import { clampOomScoreAdj } from './oom.js';
import type { OciSpec } from './pause-spec.js';
import { podPaths } from './pod-files.js';
import type { ResolvedUser } from './resolve-user.js';
import type { PinnableNamespace, PinnedNamespaces } from './ns-pin.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Every Linux capability up to CAP_CHECKPOINT_RESTORE (40), in bit order. */
export const ALL_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;
export type CapabilityName = (typeof ALL_CAPABILITIES)[number];

/** containerd's (and Docker's) default set for unprivileged containers. */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** What the caller learns by stat()ing a device's host path (st.rdev split, permission bits, owner). */
export interface DeviceInfo {
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

export interface ContainerSpecInput {
  id: string;
  config: ContainerConfig;
  image: ImageConfigFile;
  /**
   * `pinned`: the pause process's namespaces, pinned by bind mounts at pod creation
   * (runtime/ns-pin.ts). Joined by those paths; `/proc/<pausePid>/ns/*` only for a pod made before
   * pinning, whose pause the effect has just checked by its start time.
   */
  sandbox: { id: string; spec: SandboxSpec; pausePid: number | null; pinned?: PinnedNamespaces };
  /** The merged overlay. */
  rootfs: string;
  user: ResolvedUser;
  oomScoreFloor: number;
  /**
   * Already chosen and loaded (seccompProfileFor, given containerCapabilities of the same security
   * context and hostCapabilities); null for Unconfined.
   */
  seccompProfile: object | null;
  apparmorProfile: string | null;
  hostHasAppArmor: boolean;
  cgroupsPath: string;
  cgroupV2: boolean;
  /** Keyed by the normalized host path of each CRI device. */
  deviceInfo: Record<string, DeviceInfo>;
  /** The target container's pid namespace, pinned (ns-pin.ts), when namespace_options.pid is TARGET. */
  targetPidNamespace?: string;
  /**
   * The daemon's bounding set (capabilitiesFromMask of CapBnd). Privileged and "ALL" mean what this
   * host can grant, as containerd's WithAllCurrentCapabilities does: runc fails to raise a capability
   * its caller lacks. Absent: every capability in ALL_CAPABILITIES.
   */
  hostCapabilities?: readonly CapabilityName[];
}

type OciMount = OciSpec['mounts'][number];
type OciNamespace = { type: 'pid' | 'ipc' | 'uts' | 'network' | 'mount' | 'cgroup'; path?: string };
type OciDevice = { path: string } & DeviceInfo;
type OciDeviceRule = { allow: boolean; type?: 'c' | 'b'; major?: number; minor?: number; access: string };
type OciCapabilities = Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;

export type OciProcess = {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  noNewPrivileges: boolean;
  oomScoreAdj: number;
  apparmorProfile?: string;
};

export type OciResources = {
  devices: OciDeviceRule[];
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; swap?: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  unified?: Record<string, string>;
};

export type OciLinux = {
  namespaces: OciNamespace[];
  cgroupsPath: string;
  resources: OciResources;
  devices: OciDevice[];
  sysctl: Record<string, string>;
  maskedPaths: string[];
  readonlyPaths: string[];
  rootfsPropagation?: 'rslave' | 'rshared';
  seccomp?: object;
};

export interface ContainerOciSpec extends OciSpec {
  process: OciProcess;
  linux: OciLinux;
  annotations: Record<string, string>;
}

export interface ContainerSpecResult {
  spec: ContainerOciSpec;
  /** Host paths of CRI mounts: the caller creates each one that is missing as a directory (containerd does). */
  hostDirsToCreate: string[];
  /** Privileged: the caller may add the host's device nodes to linux.devices (the cgroup already allows all). */
  hostDevices: boolean;
}

export function containerSpec(input: ContainerSpecInput): ContainerSpecResult {
  const { config, sandbox } = input;
  const pod = sandbox.spec;
  const sc = config.linux?.securityContext ?? null;
  const privileged = sc?.privileged ?? false;
  const readonlyRoot = sc?.readonlyRootfs ?? false;
  const hostNetwork = pod.namespaces.network === 'NODE';
  const hostIpc = pod.namespaces.ipc === 'NODE';
  const name = config.metadata?.name ?? '';
  if (name === '') throw new InvalidArgument('metadata.name is required and must not be empty');
  checkLogPath(config.logPath);

  const { mounts, hostDirsToCreate, rootfsPropagation } = containerMounts(input, privileged, readonlyRoot, hostIpc);
  const caps = containerCapabilities(sc, input.hostCapabilities);
  const ambient = privileged ? [] : (sc?.capabilities?.addAmbientCapabilities ?? []).map((c, i) => capName(c, `capabilities.add_ambient_capabilities[${i}]`));
  const apparmor = !privileged && input.hostHasAppArmor && input.apparmorProfile ? input.apparmorProfile : null;
  const { devices, rules } = containerDevices(input, privileged);
  const resources = ociResources(config.linux?.resources ?? null, input.cgroupV2);
  const oomScoreAdj = clampOomScoreAdj(int(config.linux?.resources?.oomScoreAdj ?? '0', 'oom_score_adj'), input.oomScoreFloor);

  const linux: OciLinux = {
    namespaces: containerNamespaces(input, sc),
    cgroupsPath: input.cgroupsPath,
    resources: { devices: rules, ...resources },
    devices,
    sysctl: podSysctls(pod.sysctls, hostNetwork, hostIpc),
    maskedPaths: privileged ? [] : sc?.maskedPaths.length ? [...sc.maskedPaths] : [...DEFAULT_MASKED_PATHS],
    readonlyPaths: privileged ? [] : sc?.readonlyPaths.length ? [...sc.readonlyPaths] : [...DEFAULT_READONLY_PATHS],
  };
  if (rootfsPropagation) linux.rootfsPropagation = rootfsPropagation;
  if (!privileged && input.seccompProfile) linux.seccomp = input.seccompProfile;

  const spec: ContainerOciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: config.tty,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: [...input.user.additionalGids] },
      args: processArgs(config, input.image),
      env: processEnv(config, input.image, pod.hostname, input.user.home),
      cwd: config.workingDir || input.image.config?.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: ambient, ambient },
      noNewPrivileges: sc?.noNewPrivs ?? false,
      oomScoreAdj,
      ...(apparmor ? { apparmorProfile: apparmor } : {}),
    },
    root: { path: input.rootfs, readonly: readonlyRoot },
    // A host-network pod keeps the host's hostname (no UTS namespace of its own).
    ...(hostNetwork ? {} : { hostname: pod.hostname }),
    mounts,
    linux,
    annotations: {
      ...config.annotations,
      // Ours last: a config annotation must not disguise what the container is.
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': name,
      'io.kubernetes.cri.sandbox-id': sandbox.id,
      'io.kubernetes.cri.sandbox-name': pod.metadata.name,
      'io.kubernetes.cri.sandbox-namespace': pod.metadata.namespace,
      'io.kubernetes.cri.sandbox-uid': pod.metadata.uid,
      'io.kubernetes.cri.image-name': config.image?.image ?? '',
    },
  };
  return { spec, hostDirsToCreate, hostDevices: privileged };
}

/** Kubelet's rule: command replaces Entrypoint (and drops Cmd); args alone replace Cmd. */
export function processArgs(config: ContainerConfig, image: ImageConfigFile): string[] {
  const entrypoint = image.config?.Entrypoint ?? [];
  const cmd = image.config?.Cmd ?? [];
  let args: string[];
  if (config.command.length > 0) args = [...config.command, ...config.args];
  else if (config.args.length > 0) args = [...entrypoint, ...config.args];
  else args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new InvalidArgument('no command specified: the image has no entrypoint or cmd and the container config gives none');
  return args;
}

/**
 * containerd's order: PATH default, HOSTNAME, then the image's Env, then the config's envs, each
 * replacing an earlier entry of the same key in place. HOME from passwd when still unset.
 */
export function processEnv(config: ContainerConfig, image: ImageConfigFile, hostname: string, home: string): string[] {
  // Linear in the number of entries: a key's slot is looked up in a Map, never searched for
  // (issue 12, item 10: 20 000 envs took 75 s of the event loop with a findIndex per entry).
  const env: string[] = [];
  const slot = new Map<string, number>();
  const set = (entry: string): void => {
    const key = envKey(entry);
    const at = slot.get(key);
    if (at !== undefined) env[at] = entry;
    else slot.set(key, env.push(entry) - 1);
  };
  [DEFAULT_PATH, `HOSTNAME=${hostname}`, ...(image.config?.Env ?? [])].forEach(set);
  config.envs.forEach((kv, i) => {
    if (kv.key === '' || kv.key.includes('=')) throw new InvalidArgument(`envs[${i}].key must be a non-empty name without "=", got ${quote(kv.key)}`);
    set(`${kv.key}=${Buffer.from(kv.value).toString('utf8')}`);
  });
  if (!slot.has('HOME')) env.push(`HOME=${home}`);
  return env;
}

const envKey = (entry: string): string => {
  const at = entry.indexOf('=');
  return at < 0 ? entry : entry.slice(0, at);
};

/** The capabilities set in a hex mask such as /proc/self/status's CapBnd. */
export function capabilitiesFromMask(hex: string): CapabilityName[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  return ALL_CAPABILITIES.filter((_, bit) => ((mask >> BigInt(bit)) & 1n) === 1n);
}

/**
 * The container's capabilities (bounding = effective = permitted): privileged gets every one the
 * host can grant, others the CRI add/drop result. The RuntimeDefault seccomp profile is built from
 * the same set, so the caller computes it with this function too.
 */
export function containerCapabilities(sc: LinuxContainerSecurityContext | null, hostCapabilities: readonly CapabilityName[] = ALL_CAPABILITIES): CapabilityName[] {
  if (sc?.privileged) return ALL_CAPABILITIES.filter((c) => hostCapabilities.includes(c));
  return capabilitySet(sc, hostCapabilities);
}

/**
 * The capability set after CRI's add/drop, in containerd's order: add ALL, drop ALL, then single
 * adds, then single drops; so drop ALL + add X is exactly X, and add ALL + drop X is all but X.
 */
export function capabilitySet(sc: LinuxContainerSecurityContext | null, available: readonly CapabilityName[] = ALL_CAPABILITIES): CapabilityName[] {
  const add = (sc?.capabilities?.addCapabilities ?? []).map((c, i) => capName(c, `capabilities.add_capabilities[${i}]`));
  const drop = (sc?.capabilities?.dropCapabilities ?? []).map((c, i) => capName(c, `capabilities.drop_capabilities[${i}]`));
  const set = new Set<CapabilityName>(DEFAULT_CAPABILITIES);
  if (add.includes('ALL')) available.forEach((c) => set.add(c));
  if (drop.includes('ALL')) set.clear();
  for (const c of add) if (c !== 'ALL') set.add(c);
  for (const c of drop) if (c !== 'ALL') set.delete(c);
  return ALL_CAPABILITIES.filter((c) => set.has(c));
}

/**
 * Every capability a security context names is one this runtime knows: checked in cri/ before
 * anything is made (issue 13, item 2), so a typo is the caller's INVALID_ARGUMENT, not a failed create.
 */
export function checkCapabilities(sc: LinuxContainerSecurityContext | null | undefined): void {
  const lists = [
    ['add_capabilities', sc?.capabilities?.addCapabilities],
    ['drop_capabilities', sc?.capabilities?.dropCapabilities],
    ['add_ambient_capabilities', sc?.capabilities?.addAmbientCapabilities],
  ] as const;
  for (const [field, list] of lists) (list ?? []).forEach((c, i) => capName(c, `capabilities.${field}[${i}]`));
}

/** CRI spells capabilities without the prefix ("NET_ADMIN"); accept either, any case. */
function capName(raw: string, field: string): CapabilityName | 'ALL' {
  const upper = raw.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  const known = ALL_CAPABILITIES.find((c) => c === full);
  if (!known) throw new InvalidArgument(`${field}: unknown capability "${raw}"`);
  return known;
}

/** An absolute path without "..", normalized ("//" and a trailing "/" dropped). */
function absPath(value: string, field: string): string {
  if (!value.startsWith('/')) throw new InvalidArgument(`${field} must be an absolute path, got "${value}"`);
  if (value.split('/').includes('..')) throw new InvalidArgument(`${field} must not contain "..", got "${value}"`);
  const norm = posix.normalize(value);
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

/** log_path is relative to the pod's log_directory and must stay inside it. */
function checkLogPath(logPath: string): void {
  if (logPath === '') return;
  if (logPath.startsWith('/')) throw new InvalidArgument(`log_path must be relative to the pod's log_directory, got "${logPath}"`);
  if (logPath.split('/').includes('..')) throw new InvalidArgument(`log_path must not contain "..", got "${logPath}"`);
}

const PROPAGATION = {
  PROPAGATION_PRIVATE: 'rprivate',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
} as const;

const depth = (m: OciMount): number => m.destination.split('/').filter(Boolean).length;

/**
 * System mounts, the pod's files and CRI mounts. A CRI mount replaces ours at the same destination
 * (and a CRI /dev replaces everything we put under /dev, as containerd's WithMounts does); the pod
 * files and CRI mounts are ordered parents first so a mount at /etc does not hide /etc/hosts.
 */
function containerMounts(
  input: ContainerSpecInput,
  privileged: boolean,
  readonlyRoot: boolean,
  hostIpc: boolean,
): { mounts: OciMount[]; hostDirsToCreate: string[]; rootfsPropagation: 'rslave' | 'rshared' | null } {
  // Privileged containers get writable /sys and cgroupfs (containerd's WithWriteableSysfs/Cgroupfs).
  const sysMode = privileged ? 'rw' : 'ro';
  const system: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysMode] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysMode] },
  ];
  // containerd makes the pod's files read-only exactly when the rootfs is.
  const fileMode = readonlyRoot ? 'ro' : 'rw';
  const paths = podPaths(input.sandbox.spec);
  const pod: OciMount[] = [
    { destination: '/etc/hostname', type: 'bind', source: paths.hostname, options: ['rbind', 'rprivate', fileMode] },
    { destination: '/etc/hosts', type: 'bind', source: paths.hosts, options: ['rbind', 'rprivate', fileMode] },
    { destination: '/etc/resolv.conf', type: 'bind', source: paths.resolv, options: ['rbind', 'rprivate', fileMode] },
    // Host IPC shares the host's /dev/shm, as the pod then has no shm of its own.
    { destination: '/dev/shm', type: 'bind', source: hostIpc ? '/dev/shm' : paths.shm, options: ['rbind', 'rprivate', 'rw'] },
  ];

  const user: OciMount[] = [];
  const hostDirs = new Set<string>();
  let propagation: 'rslave' | 'rshared' | null = null;
  for (const [i, m] of input.config.mounts.entries()) {
    const destination = absPath(m.containerPath, `mounts[${i}].container_path`);
    if (m.image?.image) throw new InvalidArgument(`mounts[${i}]: image volumes are not supported`);
    const source = absPath(m.hostPath, `mounts[${i}].host_path`);
    if (user.some((u) => u.destination === destination)) throw new InvalidArgument(`mounts[${i}].container_path ${destination} is mounted twice`);
    const prop = PROPAGATION[m.propagation] ?? 'rprivate';
    // runc needs the rootfs mount to propagate at least as much as the mounts inside it.
    if (prop === 'rshared') propagation = 'rshared';
    else if (prop === 'rslave' && propagation !== 'rshared') propagation = 'rslave';
    user.push({ destination, type: 'bind', source, options: ['rbind', prop, m.readonly ? 'ro' : 'rw'] });
    hostDirs.add(source);
  }
  const taken = new Set(user.map((m) => m.destination));
  const keep = (m: OciMount): boolean => !taken.has(m.destination) && !(taken.has('/dev') && m.destination.startsWith('/dev/'));
  const ordered = [...pod.filter(keep), ...user].sort((a, b) => depth(a) - depth(b)); // stable
  return { mounts: [...system.filter(keep), ...ordered], hostDirsToCreate: [...hostDirs], rootfsPropagation: propagation };
}

function containerDevices(input: ContainerSpecInput, privileged: boolean): { devices: OciDevice[]; rules: OciDeviceRule[] } {
  // Deny everything first; runc appends its default allowances (null, zero, tty, ptmx, …) after ours.
  const rules: OciDeviceRule[] = [{ allow: privileged, access: 'rwm' }];
  const devices: OciDevice[] = [];
  for (const [i, d] of input.config.devices.entries()) {
    const hostPath = absPath(d.hostPath, `devices[${i}].host_path`);
    const path = absPath(d.containerPath, `devices[${i}].container_path`);
    const access = d.permissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(access)) throw new InvalidArgument(`devices[${i}].permissions must be letters of "rwm", got "${d.permissions}"`);
    const info = input.deviceInfo[hostPath] ?? input.deviceInfo[d.hostPath];
    if (!info) throw new InvalidArgument(`devices[${i}].host_path ${hostPath} is not a device on this node`);
    devices.push({ path, ...info, fileMode: info.fileMode & 0o7777 });
    if (!privileged) rules.push({ allow: true, type: info.type, major: info.major, minor: info.minor, access });
  }
  return { devices, rules };
}

export { splitDeviceNumber } from '../host/mounts.js';

/**
 * Namespaces: pid per the container's namespace_options (the pod's mode when unset), ipc and uts
 * joined from the pause process unless the pod uses the host's, the pod's network namespace, a new
 * mount namespace, and a new cgroup namespace on cgroup v2 (containerd's default there).
 */
function containerNamespaces(input: ContainerSpecInput, sc: LinuxContainerSecurityContext | null): OciNamespace[] {
  const pod = input.sandbox.spec;
  const pause = (kind: string): string => {
    const pinned = input.sandbox.pinned?.[kind as PinnableNamespace];
    if (pinned) return pinned;
    if (input.sandbox.pausePid === null) throw new Refused(`the pod's ${kind} namespace is neither pinned nor held by a running pause process: it cannot be joined`);
    return `/proc/${input.sandbox.pausePid}/ns/${kind}`;
  };
  const ns: OciNamespace[] = [];
  const pidMode = sc?.namespaceOptions?.pid ?? (pod.namespaces.pid as NamespaceMode);
  switch (pidMode) {
    case 'NODE':
      break;
    case 'CONTAINER':
      ns.push({ type: 'pid' });
      break;
    case 'TARGET':
      if (input.targetPidNamespace === undefined) throw new InvalidArgument('namespace_options.pid is TARGET but the target container is not running');
      ns.push({ type: 'pid', path: input.targetPidNamespace });
      break;
    case 'POD':
      ns.push({ type: 'pid', path: pause('pid') });
      break;
  }
  if (pod.namespaces.ipc !== 'NODE') ns.push({ type: 'ipc', path: pause('ipc') });
  if (pod.namespaces.network !== 'NODE') {
    ns.push({ type: 'uts', path: pause('uts') });
    ns.push({ type: 'network', path: pod.netnsPath ?? pause('net') });
  }
  ns.push({ type: 'mount' });
  if (input.cgroupV2) ns.push({ type: 'cgroup' });
  return ns;
}

/** int64 as proto-loader gives it (a decimal string), checked to fit a JS number. */
function int(value: string, field: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n)) throw new InvalidArgument(`${field} must be an integer, got ${quote(String(value))}`);
  return n;
}

/** The kernel's cpulist syntax (Documentation/admin-guide/cgroup-v2.rst "cpuset.cpus"): "0-3,5,8-15:2/4". */
const CPU_LIST = /^\d+(-\d+(:\d+\/\d+)?)?(,\d+(-\d+(:\d+\/\d+)?)?)*$/;

function checkCpuList(value: string, field: string): void {
  if (value === '') return;
  const ranges = value.split(',').map((r) => r.split(':')[0]?.split('-').map(Number) ?? []);
  if (value.length > 4096 || !CPU_LIST.test(value) || ranges.some(([from = 0, to = from]) => to < from)) {
    throw new InvalidArgument(`${field} must be a CPU or memory-node list such as "0-3,6", got ${quote(value)}`);
  }
}

/**
 * Values the kernel or runc would refuse, refused first with the field named (issue 12, items 13
 * and 14): a negative limit, an oom_score_adj outside the kernel's -1000..1000, a cpuset that is not
 * a list. Shared by CreateContainer and UpdateContainerResources.
 */
export function checkResources(r: LinuxContainerResources): void {
  const atLeast = (value: string, min: number, field: string): void => {
    const n = int(value, `resources.${field}`);
    if (n < min) throw new InvalidArgument(`resources.${field} must be ${min === 0 ? 'zero (unset) or more' : `at least ${min}`}, got ${n}`);
  };
  atLeast(r.memoryLimitInBytes, 0, 'memory_limit_in_bytes');
  atLeast(r.memorySwapLimitInBytes, -1, 'memory_swap_limit_in_bytes');
  atLeast(r.cpuShares, 0, 'cpu_shares');
  atLeast(r.cpuPeriod, 0, 'cpu_period');
  atLeast(r.cpuQuota, -1, 'cpu_quota');
  const oom = int(r.oomScoreAdj, 'resources.oom_score_adj');
  if (oom < -1000 || oom > 1000) throw new InvalidArgument(`resources.oom_score_adj must be between -1000 and 1000, got ${oom}`);
  checkCpuList(r.cpusetCpus, 'resources.cpuset_cpus');
  checkCpuList(r.cpusetMems, 'resources.cpuset_mems');
}

/**
 * linux.resources without the device rules: also what `runc update --resources -` takes for
 * UpdateContainerResources. CRI's zero means "not set" for every field.
 */
export function ociResources(r: LinuxContainerResources | null, cgroupV2: boolean): Omit<OciResources, 'devices'> {
  if (!r) return {};
  checkResources(r);
  const out: Omit<OciResources, 'devices'> = {};
  const cpu: NonNullable<OciResources['cpu']> = {};
  const shares = int(r.cpuShares, 'resources.cpu_shares');
  const quota = int(r.cpuQuota, 'resources.cpu_quota');
  const period = int(r.cpuPeriod, 'resources.cpu_period');
  if (shares > 0) cpu.shares = shares;
  if (quota !== 0) cpu.quota = quota;
  if (period > 0) cpu.period = period;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const memory: NonNullable<OciResources['memory']> = {};
  const limit = int(r.memoryLimitInBytes, 'resources.memory_limit_in_bytes');
  const swap = int(r.memorySwapLimitInBytes, 'resources.memory_swap_limit_in_bytes');
  if (limit > 0) memory.limit = limit;
  // Swap is memory+swap, as in cgroup v1 and OCI; -1 lifts the limit.
  if (swap > 0 || swap === -1) memory.swap = swap;
  if (limit > 0 && swap > 0 && swap < limit) {
    throw new InvalidArgument(`resources.memory_swap_limit_in_bytes (${swap}) must not be below memory_limit_in_bytes (${limit})`);
  }
  if (Object.keys(memory).length > 0) out.memory = memory;

  if (r.hugepageLimits.length > 0) {
    out.hugepageLimits = r.hugepageLimits.map((h, i) => {
      if (!/^\d+[KMGTP]B$/.test(h.pageSize)) throw new InvalidArgument(`resources.hugepage_limits[${i}].page_size must look like "2MB", got "${h.pageSize}"`);
      return { pageSize: h.pageSize, limit: int(h.limit, `resources.hugepage_limits[${i}].limit`) };
    });
  }
  if (Object.keys(r.unified).length > 0) {
    if (!cgroupV2) throw new InvalidArgument('resources.unified needs cgroup v2; this node runs cgroup v1');
    out.unified = { ...r.unified };
  }
  return out;
}

const IPC_SYSCTL = /^(kernel\.shm|kernel\.msg|kernel\.sem$|fs\.mqueue\.)/;

/**
 * Kubelet's namespaced sysctls: net.* belong to the pod's network namespace, the IPC ones to its IPC
 * namespace. Anything else would change the whole node, and one in a namespace the pod shares with
 * the host would too: both refused, naming the sysctl.
 */
export function podSysctls(sysctls: Record<string, string>, hostNetwork: boolean, hostIpc: boolean): Record<string, string> {
  for (const key of Object.keys(sysctls)) {
    if (key.startsWith('net.')) {
      if (hostNetwork) throw new InvalidArgument(`sysctl "${key}" needs the pod's own network namespace; this pod uses the host's`);
    } else if (IPC_SYSCTL.test(key)) {
      if (hostIpc) throw new InvalidArgument(`sysctl "${key}" needs the pod's own IPC namespace; this pod uses the host's`);
    } else {
      throw new InvalidArgument(`sysctl "${key}" is not namespaced: setting it would change the whole node`);
    }
  }
  return { ...sysctls };
}
