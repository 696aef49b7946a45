/**
 * CreateContainer's bounds, checked before any actor, record or file exists (issue 12, items 10,
 * 13, 14). Every string and list a client sends is bounded, so no request makes more than linear
 * work or a reply past a few KiB, and nothing the kernel, runc or conmon would refuse later with
 * raw text gets that far. Refusals name the field and quote at most MAX_QUOTED_BYTES of it.
 */
import { posix } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';
import type { ContainerConfig, LinuxContainerSecurityContext } from '../runtime/cri-container-types.js';
import { seccompChoice } from '../runtime/seccomp-default.js';
import { apparmorProfileName } from '../runtime/apparmor.js';
import { checkCapabilities, checkResources } from '../runtime/container-spec.js';
import { checkUserNamespace } from '../runtime/userns.js';
import { checkText, MAX_CONTAINER_NAME_BYTES, MAX_PATH_BYTES, quote } from './validate.js';

/** At most this many env entries (the bound; kubelet sends one per env var of the pod spec). */
export const MAX_ENVS = 10_000;
/** The kernel's MAX_ARG_STRLEN: execve refuses a longer single argument or env string. */
export const MAX_ARG_BYTES = 128 * 1024;
/** command + args + envs together: execve's limit is a quarter of the stack rlimit (2 MiB by default). */
export const MAX_EXEC_BYTES = 1024 * 1024;
export const MAX_ARGS = 10_000;
export const MAX_MOUNTS = 1024;
export const MAX_DEVICES = 1024;
/** The masked and read-only path lists of a security context, each. */
export const MAX_PATH_LIST = 1024;

/**
 * The only paths under /proc runc lets a bind mount cover (libcontainer's checkProcMount, as youki's
 * check_proc_mount): anything else fails at create with runc's raw text.
 */
const PROC_MOUNTS: readonly string[] = [
  '/proc/cpuinfo', '/proc/diskstats', '/proc/meminfo', '/proc/stat', '/proc/swaps', '/proc/uptime', '/proc/loadavg',
  '/proc/slabinfo', '/proc/net/dev', '/proc/sys/kernel/ns_last_pid', '/proc/sys/crypto/fips_enabled',
];

/** The largest uid or gid (2^32 - 2: 2^32 - 1 is the kernel's "no id"). */
const MAX_UID = 4_294_967_294;

const PROPAGATIONS: readonly unknown[] = ['PROPAGATION_PRIVATE', 'PROPAGATION_HOST_TO_CONTAINER', 'PROPAGATION_BIDIRECTIONAL', undefined, null, ''];

/** Throws InvalidArgument at the first field out of bounds. */
export function checkContainerConfig(config: ContainerConfig): void {
  if (!config.metadata?.name) throw new InvalidArgument('ContainerConfig.metadata.name is required');
  checkText(config.metadata.name, 'ContainerConfig.metadata.name', MAX_CONTAINER_NAME_BYTES);
  // The ids are checked again where the image's user is resolved; here, before anything is made,
  // so a bad one is the caller's INVALID_ARGUMENT and not a failed create.
  const sc = config.linux?.securityContext;
  for (const [field, v] of [['run_as_user', sc?.runAsUser?.value], ['run_as_group', sc?.runAsGroup?.value]] as const) {
    if (v === undefined || v === null) continue;
    const s = String(v);
    if (!/^\d{1,10}$/.test(s) || Number(s) > MAX_UID) throw new InvalidArgument(`ContainerConfig.linux.security_context.${field} must be an id from 0 to ${MAX_UID}, got ${quote(s)}`);
  }
  checkExec(config);
  const workingDir = config.workingDir ?? '';
  if (workingDir !== '') {
    checkText(workingDir, 'ContainerConfig.working_dir', MAX_PATH_BYTES);
    if (!workingDir.startsWith('/')) throw new InvalidArgument(`ContainerConfig.working_dir must be an absolute path, got ${quote(workingDir)}`);
  }
  const mounts = config.mounts ?? [];
  if (mounts.length > MAX_MOUNTS) throw new InvalidArgument(`ContainerConfig.mounts has ${mounts.length} entries; the limit is ${MAX_MOUNTS}`);
  for (const [i, m] of mounts.entries()) {
    checkText(m.containerPath, `ContainerConfig.mounts[${i}].container_path`, MAX_PATH_BYTES);
    checkText(m.hostPath, `ContainerConfig.mounts[${i}].host_path`, MAX_PATH_BYTES);
    const destination = posix.normalize(m.containerPath).replace(/(.)\/$/, '$1');
    if ((destination === '/proc' || destination.startsWith('/proc/')) && !PROC_MOUNTS.includes(destination)) {
      throw new InvalidArgument(`ContainerConfig.mounts[${i}].container_path ${quote(destination)} is in /proc, where the runtime mounts only over ${PROC_MOUNTS.join(', ')}`);
    }
    if (!PROPAGATIONS.includes(m.propagation)) {
      throw new InvalidArgument(`ContainerConfig.mounts[${i}].propagation ${quote(String(m.propagation))} is not a MountPropagation: use PROPAGATION_PRIVATE, PROPAGATION_HOST_TO_CONTAINER or PROPAGATION_BIDIRECTIONAL`);
    }
  }
  const devices = config.devices ?? [];
  if (devices.length > MAX_DEVICES) throw new InvalidArgument(`ContainerConfig.devices has ${devices.length} entries; the limit is ${MAX_DEVICES}`);
  for (const [i, d] of devices.entries()) {
    checkText(d.containerPath, `ContainerConfig.devices[${i}].container_path`, MAX_PATH_BYTES);
    checkText(d.hostPath, `ContainerConfig.devices[${i}].host_path`, MAX_PATH_BYTES);
    checkText(d.permissions ?? '', `ContainerConfig.devices[${i}].permissions`, 3);
  }
  for (const [list, field] of [[sc?.maskedPaths ?? [], 'masked_paths'], [sc?.readonlyPaths ?? [], 'readonly_paths']] as const) {
    if (list.length > MAX_PATH_LIST) throw new InvalidArgument(`LinuxContainerSecurityContext.${field} has ${list.length} entries; the limit is ${MAX_PATH_LIST}`);
    list.forEach((p, i) => checkText(p, `LinuxContainerSecurityContext.${field}[${i}]`, MAX_PATH_BYTES));
  }
  if (config.linux?.resources) checkResources(config.linux.resources);
  checkCapabilities(sc);
  checkSecurityProfiles(sc);
  checkUserNamespace(sc?.namespaceOptions, 'ContainerConfig.linux.security_context.namespace_options');
}

/**
 * Seccomp and AppArmor names, by their syntax alone (the profile file itself is read at create,
 * on the host), through the same functions the create effect uses.
 */
function checkSecurityProfiles(sc: LinuxContainerSecurityContext | null | undefined): void {
  checkText(sc?.seccomp?.localhostRef ?? '', 'LinuxContainerSecurityContext.seccomp.localhost_ref', MAX_PATH_BYTES);
  checkText(sc?.seccompProfilePath ?? '', 'LinuxContainerSecurityContext.seccomp_profile_path', MAX_PATH_BYTES);
  checkText(sc?.apparmor?.localhostRef ?? '', 'LinuxContainerSecurityContext.apparmor.localhost_ref', MAX_PATH_BYTES);
  checkText(sc?.apparmorProfile ?? '', 'LinuxContainerSecurityContext.apparmor_profile', MAX_PATH_BYTES);
  seccompChoice(sc);
  apparmorProfileName(sc);
}

/** command, args and envs: counts, each string, the total, and no NUL (execve cannot carry one). */
function checkExec(config: ContainerConfig): void {
  const envs = config.envs ?? [];
  if (envs.length > MAX_ENVS) throw new InvalidArgument(`ContainerConfig.envs has ${envs.length} entries; the limit is ${MAX_ENVS}`);
  let total = 0;
  for (const [list, field] of [[config.command ?? [], 'command'], [config.args ?? [], 'args']] as const) {
    if (list.length > MAX_ARGS) throw new InvalidArgument(`ContainerConfig.${field} has ${list.length} entries; the limit is ${MAX_ARGS}`);
    for (const [i, arg] of list.entries()) {
      total += checkExecString(Buffer.from(arg), `ContainerConfig.${field}[${i}]`);
    }
  }
  for (const [i, kv] of envs.entries()) {
    const key = kv.key ?? '';
    if (key === '' || key.includes('=')) throw new InvalidArgument(`ContainerConfig.envs[${i}].key must be a non-empty name without "=", got ${quote(key)}`);
    total += checkExecString(Buffer.concat([Buffer.from(`${key}=`), Buffer.from(kv.value ?? '')]), `ContainerConfig.envs[${i}]`);
  }
  if (total > MAX_EXEC_BYTES) throw new InvalidArgument(`ContainerConfig command, args and envs total ${total} bytes; the limit is ${MAX_EXEC_BYTES}`);
}

function checkExecString(bytes: Buffer, field: string): number {
  if (bytes.length > MAX_ARG_BYTES) throw new InvalidArgument(`${field} is ${bytes.length} bytes; the kernel takes at most ${MAX_ARG_BYTES} per argument or env entry`);
  if (bytes.includes(0)) throw new InvalidArgument(`${field} contains a NUL byte, which a process's arguments and environment cannot carry`);
  return bytes.length + 1;
}
