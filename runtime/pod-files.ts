/** The files every pod shares with its containers: hostname, hosts, resolv.conf and /dev/shm. */
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxSpec } from '../machines/sandbox.types.js';
import { isMounted, unmountAll } from '../host/mounts.js';
import { run } from '../host/exec.js';
import { PRIVATE_DIR, SHARED_FILE } from '../host/private-modes.js';

export interface PodPaths {
  hostname: string;
  hosts: string;
  resolv: string;
  shm: string;
  bundle: string;
  exitDir: string;
  pidFile: string;
  conmonPidFile: string;
  pauseLog: string;
  /** The pause process's ipc, uts and pid namespaces, pinned while the pod runs (ns-pin.ts). */
  nsDir: string;
}

export function podPaths(spec: SandboxSpec): PodPaths {
  return {
    hostname: join(spec.rootDir, 'hostname'),
    hosts: join(spec.rootDir, 'hosts'),
    resolv: join(spec.rootDir, 'resolv.conf'),
    shm: join(spec.stateDir, 'shm'),
    bundle: join(spec.stateDir, 'bundle'),
    exitDir: join(spec.stateDir, 'exits'),
    pidFile: join(spec.stateDir, 'pause.pid'),
    conmonPidFile: join(spec.stateDir, 'conmon.pid'),
    pauseLog: join(spec.stateDir, 'pause.log'),
    nsDir: join(spec.stateDir, 'ns'),
  };
}

const DEFAULT_HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'fe00::0\tip6-mcastprefix',
  'fe00::1\tip6-allnodes',
  'fe00::2\tip6-allrouters',
];

/** resolv.conf from the pod's DNSConfig, as kubelet expects the runtime to write it. */
export function resolvConf(dns: NonNullable<SandboxSpec['dns']>): string {
  const lines = dns.servers.map((s) => `nameserver ${s}`);
  if (dns.searches.length) lines.push(`search ${dns.searches.join(' ')}`);
  if (dns.options.length) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/**
 * The pod's dirs are ours (0700); the three files are bind-mounted into every container, where a
 * process of any uid reads them: 0644 whatever the host's copies have. A bind mount needs no
 * traversal of the host-side parents, so those stay 0700.
 */
export async function writePodFiles(spec: SandboxSpec, paths: PodPaths): Promise<void> {
  for (const dir of [spec.rootDir, spec.stateDir, paths.exitDir, paths.bundle]) await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  const hostNetwork = spec.namespaces.network === 'NODE';
  await writeFile(paths.hostname, `${spec.hostname}\n`);
  if (hostNetwork && existsSync('/etc/hosts')) await copyFile('/etc/hosts', paths.hosts);
  else await writeFile(paths.hosts, `${DEFAULT_HOSTS.join('\n')}\n`);
  if (spec.dns && (spec.dns.servers.length || spec.dns.searches.length || spec.dns.options.length)) {
    await writeFile(paths.resolv, resolvConf(spec.dns));
  } else if (existsSync('/etc/resolv.conf')) {
    await copyFile('/etc/resolv.conf', paths.resolv);
  } else {
    await writeFile(paths.resolv, '');
  }
  for (const file of [paths.hostname, paths.hosts, paths.resolv]) await chmod(file, SHARED_FILE);
}

/** A size-limited tmpfs for /dev/shm, unless the pod shares the host's IPC namespace. */
export async function mountShm(spec: SandboxSpec, path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: PRIVATE_DIR }); // the mount point; the tmpfs itself is 1777
  if (await isMounted(path)) return;
  await run('mount', ['-t', 'tmpfs', '-o', `nosuid,nodev,noexec,mode=1777,size=${spec.shmSizeBytes}`, 'shm', path]);
}

export async function unmountShm(path: string): Promise<void> {
  await unmountAll([path]);
}

