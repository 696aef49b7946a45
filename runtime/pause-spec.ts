/**
 * The OCI spec of a pod's pause container: catatonit as pid 1 of the pod, holding its namespaces.
 * Pure: the same sandbox gives the same spec, so writing it again on a retry changes nothing.
 */
import type { SandboxSpec } from '../machines/sandbox.types.js';

export const PAUSE_BINARY_IN_ROOTFS = '/catatonit';
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface PauseSpecInput {
  id: string;
  spec: SandboxSpec;
  rootfs: string;
  /** The oom_score_adj after clamping to what the host allows. */
  oomScoreAdj: number;
  cgroupsPath: string;
  shmPath: string | null;
  hostnamePath: string;
  hostsPath: string;
  resolvPath: string;
}

export interface OciSpec {
  ociVersion: string;
  process: Record<string, unknown>;
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: { destination: string; type: string; source: string; options: string[] }[];
  linux: Record<string, unknown>;
  annotations?: Record<string, string>;
}

export function pauseSpec(p: PauseSpecInput): OciSpec {
  const ns = p.spec.namespaces;
  const hostNetwork = ns.network === 'NODE';
  const hostIpc = ns.ipc === 'NODE';
  const hostPid = ns.pid === 'NODE';
  const namespaces: { type: string; path?: string }[] = [{ type: 'mount' }];
  if (!hostPid) namespaces.push({ type: 'pid' });
  if (!hostIpc) namespaces.push({ type: 'ipc' });
  // A host-network pod keeps the host's hostname too (as containerd and CRI-O do).
  if (!hostNetwork) namespaces.push({ type: 'uts' });
  if (!hostNetwork && p.spec.netnsPath) namespaces.push({ type: 'network', path: p.spec.netnsPath });

  const mounts: OciSpec['mounts'] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: p.hostnamePath, options: ['rbind', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: p.hostsPath, options: ['rbind', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: p.resolvPath, options: ['rbind', 'ro'] },
  ];
  if (p.shmPath) mounts.push({ destination: '/dev/shm', type: 'bind', source: p.shmPath, options: ['rbind', 'rw'] });

  const caps: string[] = []; // catatonit needs none
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [PAUSE_BINARY_IN_ROOTFS, '-P'],
      env: [DEFAULT_PATH],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
      oomScoreAdj: p.oomScoreAdj,
    },
    root: { path: p.rootfs, readonly: true },
    ...(hostNetwork ? {} : { hostname: p.spec.hostname }),
    mounts,
    linux: {
      namespaces,
      cgroupsPath: p.cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }], cpu: { shares: 2 } },
      sysctl: p.spec.sysctls,
      maskedPaths: [
        '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
      ],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
    annotations: { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': p.id },
  };
}
