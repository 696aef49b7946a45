/**
 * podchart's RuntimeDefault seccomp profile, in OCI `linux.seccomp` form, and the loader for CRI
 * Localhost profiles.
 *
 * The allowlist follows Docker's/containerd's default profile (moby profiles/seccomp/default.json),
 * built for the container's capabilities as containerd's DefaultProfile does: a syscall that moby
 * allows only with a capability (`includes: {caps}`: mount, sethostname, setns and unshare with
 * CAP_SYS_ADMIN, reboot with CAP_SYS_BOOT, settimeofday with CAP_SYS_TIME, …) is allowed exactly when
 * the container holds that capability. The capability is the real gate then; seccomp only keeps a
 * container that lacks it from reaching the syscall's code at all. Other choices, each on the safe side:
 * - ptrace, process_vm_readv/writev are allowed unconditionally: Docker allows them on kernels ≥ 4.8,
 *   where seccomp can no longer be bypassed through ptrace; Kubernetes needs newer kernels anyway.
 * - Without CAP_SYS_ADMIN, clone is allowed only without namespace flags (Docker's arg filter, x86/arm
 *   argument order; the s390 order is not handled), and clone3 fails with ENOSYS so libc falls back to
 *   clone, which the filter can inspect (clone3 passes its flags in memory, out of seccomp's reach).
 * - Architecture-specific syscalls (arch_prctl, modify_ldt, arm_*, set_tls, …) sit in the one list;
 *   runc skips names libseccomp does not know for an architecture.
 * - io_uring_* are blocked, as Docker does since v25 (a rich source of kernel bugs).
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { InvalidArgument } from '../errors/catalogue.js';
import { quote } from '../errors/quote.js';
import type { CapabilityName } from './container-spec.js';
import type { LinuxContainerSecurityContext } from './cri-container-types.js';

export type SeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

export const SECCOMP_ACTIONS: readonly SeccompAction[] = [
  'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY',
];

export type SeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

export interface SeccompSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** OCI runtime-spec `linux.seccomp`. */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: SeccompSyscall[];
}

const EPERM = 1;
const ENOSYS = 38;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: creating namespaces needs CAP_SYS_ADMIN. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** Allowed for everyone (Docker's unconditional group, plus the per-architecture ones). */
const ALLOWED: readonly string[] = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset', 'chdir',
  'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64',
  'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64', 'close', 'close_range',
  'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create', 'epoll_create1', 'epoll_ctl',
  'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2',
  'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64',
  'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat',
  'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr',
  'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64', 'futex',
  'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake', 'futimesat', 'get_robust_list',
  'get_thread_area', 'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid',
  'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid',
  'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid',
  'getresuid32', 'getrlimit', 'getrusage', 'getsid', 'getsockname', 'getsockopt', 'gettid', 'gettimeofday',
  'getuid', 'getuid32', 'getxattr', 'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch',
  'io_cancel', 'io_destroy', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'io_setup', 'io_submit',
  'ioctl', 'ioprio_get', 'ioprio_set', 'ipc', 'kill', 'landlock_add_rule', 'landlock_create_ruleset',
  'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr', 'link', 'linkat', 'listen', 'listxattr',
  'llistxattr', '_llseek', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise',
  'map_shadow_stack', 'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod',
  'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mprotect', 'mq_getsetattr', 'mq_notify',
  'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink',
  'mremap', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap',
  'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause',
  'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll',
  'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease',
  'process_vm_readv', 'process_vm_writev', 'pselect6', 'pselect6_time64', 'ptrace', 'pwrite64', 'pwritev',
  'pwritev2', 'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg',
  'recvmmsg_time64', 'recvmsg', 'remap_file_pages', 'removexattr', 'rename', 'renameat', 'renameat2',
  'restart_syscall', 'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo',
  'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo',
  'sched_get_priority_max', 'sched_get_priority_min', 'sched_getaffinity', 'sched_getattr', 'sched_getparam',
  'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity',
  'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl',
  'semget', 'semop', 'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg',
  'sendmsg', 'sendto', 'set_robust_list', 'set_thread_area', 'set_tid_address', 'setfsgid', 'setfsgid32',
  'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer', 'setpgid',
  'setpriority', 'setregid', 'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32', 'setreuid',
  'setreuid32', 'setrlimit', 'setsid', 'setsockopt', 'setuid', 'setuid32', 'setxattr', 'shmat', 'shmctl',
  'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn', 'socket',
  'socketcall', 'socketpair', 'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statx', 'symlink',
  'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time', 'timer_create',
  'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64',
  'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times',
  'tkill', 'truncate', 'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'utime',
  'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write',
  'writev',
  // Per architecture (Docker lists them under arch conditions): x86 …
  'arch_prctl', 'modify_ldt',
  // … and arm / aarch64.
  'arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls',
];

/**
 * Allowed only to a container holding the capability (moby's `includes: {caps}` groups). A syscall
 * under two capabilities (bpf, perf_event_open, syslog) is allowed with either.
 */
const ALLOWED_WITH_CAPABILITY: Readonly<Partial<Record<CapabilityName, readonly string[]>>> = {
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
  CAP_SYS_ADMIN: [
    'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie', 'mount',
    'mount_setattr', 'move_mount', 'open_tree', 'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname',
    'sethostname', 'setns', 'syslog', 'umount', 'umount2', 'unshare',
  ],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_CHROOT: ['chroot'],
  CAP_SYS_MODULE: ['delete_module', 'init_module', 'finit_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'],
  CAP_SYSLOG: ['syslog'],
  CAP_BPF: ['bpf'],
  CAP_PERFMON: ['perf_event_open'],
};

/** The personalities Docker allows: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, and query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** The RuntimeDefault profile for a container with these capabilities (its bounding set). */
export function defaultSeccompProfile(capabilities: readonly CapabilityName[]): SeccompProfile {
  const names = new Set(ALLOWED);
  for (const cap of capabilities) for (const name of ALLOWED_WITH_CAPABILITY[cap] ?? []) names.add(name);
  const sysAdmin = capabilities.includes('CAP_SYS_ADMIN');
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [
      { names: [...names], action: 'SCMP_ACT_ALLOW' },
      ...PERSONALITIES.map((p): SeccompSyscall => ({
        names: ['personality'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }],
      })),
      // With CAP_SYS_ADMIN, clone and clone3 are in the list above, namespace flags and all.
      ...(sysAdmin
        ? []
        : [
            {
              names: ['clone'],
              action: 'SCMP_ACT_ALLOW',
              args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
            } satisfies SeccompSyscall,
            { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS } satisfies SeccompSyscall,
          ]),
    ],
  };
}

/**
 * The profile a container gets, chosen as containerd does: privileged → none; else the `seccomp`
 * field (RuntimeDefault → ours for `capabilities`, Localhost → that file, Unconfined → none); else
 * the deprecated seccomp_profile_path ("runtime/default", "docker/default", "localhost/<path>",
 * "unconfined"), where "" means Unconfined, kubelet's own default. `capabilities` is the container's
 * bounding set (containerSpec's containerCapabilities).
 */
export async function seccompProfileFor(
  sc: LinuxContainerSecurityContext | null,
  capabilities: readonly CapabilityName[],
  root = '/',
): Promise<SeccompProfile | null> {
  if (!sc || sc.privileged) return null;
  const choice = seccompChoice(sc);
  if (choice === 'unconfined') return null;
  if (choice === 'runtime-default') return defaultSeccompProfile(capabilities);
  return loadLocalhostProfile(root, choice.localhost);
}

/**
 * Which profile a security context names, by its syntax alone: no file is read. CreateContainer
 * checks it in cri/ before anything is made (issue 13, item 2); seccompProfileFor acts on it. An
 * unknown profile type is refused, never taken for no profile at all.
 */
export function seccompChoice(sc: LinuxContainerSecurityContext | null | undefined): 'unconfined' | 'runtime-default' | { localhost: string } {
  if (sc?.seccomp) {
    switch (sc.seccomp.profileType) {
      case 'RuntimeDefault':
        return 'runtime-default';
      case 'Unconfined':
        return 'unconfined';
      case 'Localhost':
        return { localhost: checkLocalhostRef(sc.seccomp.localhostRef ?? '') };
      default:
        throw new InvalidArgument(`LinuxContainerSecurityContext.seccomp.profile_type ${quote(String(sc.seccomp.profileType))} is not a SecurityProfile type: use RuntimeDefault, Unconfined or Localhost`);
    }
  }
  const path = sc?.seccompProfilePath ?? '';
  if (path === '' || path === 'unconfined') return 'unconfined';
  if (path === 'runtime/default' || path === 'docker/default') return 'runtime-default';
  if (path.startsWith('localhost/')) return { localhost: checkLocalhostRef(path.slice('localhost'.length)) };
  throw new InvalidArgument(`LinuxContainerSecurityContext.seccomp_profile_path ${quote(path)} is not runtime/default, unconfined or localhost/<path>`);
}

/** CRI's localhost_ref: an absolute host path, without "..". */
function checkLocalhostRef(localhostRef: string): string {
  if (!isAbsolute(localhostRef)) {
    throw new InvalidArgument(`LinuxContainerSecurityContext.seccomp.localhost_ref must be an absolute path without "..", got ${quote(localhostRef)}`);
  }
  if (localhostRef.split('/').includes('..')) {
    throw new InvalidArgument(`LinuxContainerSecurityContext.seccomp.localhost_ref must not contain "..", got ${quote(localhostRef)}`);
  }
  return localhostRef;
}

/**
 * Reads a Localhost profile. CRI's localhost_ref is an absolute host path; `root` is the host's root
 * ("/" in the daemon, a temp dir in tests) so the file read is root + ref. Docker-format profiles
 * (archMap, includes/excludes) are accepted and reduced to OCI form.
 */
export async function loadLocalhostProfile(root: string, localhostRef: string): Promise<SeccompProfile> {
  checkLocalhostRef(localhostRef);
  let text: string;
  try {
    text = await readFile(join(root, localhostRef), 'utf8');
  } catch (err) {
    throw new InvalidArgument(`seccomp profile ${localhostRef} cannot be read: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`seccomp profile ${localhostRef} is not valid JSON: ${(err as Error).message}`);
  }
  return toOciProfile(parsed, localhostRef);
}

interface DockerProfile {
  defaultAction?: unknown;
  defaultErrnoRet?: unknown;
  architectures?: unknown;
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  flags?: unknown;
  syscalls?: (Record<string, unknown> & { name?: string; names?: string[]; includes?: Record<string, unknown> })[];
}

/**
 * Checks the shape runc relies on and strips Docker's conditions. A rule with `includes` (allow only
 * with some capability / architecture / kernel) is dropped: we do not evaluate those conditions, and
 * keeping the rule unconditionally would loosen the profile. `excludes` only narrows, so the rule stays.
 */
export function toOciProfile(raw: unknown, source: string): SeccompProfile {
  const bad = (why: string): InvalidArgument => new InvalidArgument(`seccomp profile ${source}: ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const p = raw as DockerProfile;
  if (!isAction(p.defaultAction)) throw bad(`defaultAction ${JSON.stringify(p.defaultAction)} is not a seccomp action`);
  const out: SeccompProfile = { defaultAction: p.defaultAction };
  if (typeof p.defaultErrnoRet === 'number') out.defaultErrnoRet = p.defaultErrnoRet;
  if (Array.isArray(p.architectures)) out.architectures = p.architectures.map(String);
  else if (Array.isArray(p.archMap)) out.architectures = p.archMap.flatMap((a) => [a.architecture, ...(a.subArchitectures ?? [])]);
  if (Array.isArray(p.flags)) out.flags = p.flags.map(String);
  const syscalls: SeccompSyscall[] = [];
  for (const [i, rule] of (p.syscalls ?? []).entries()) {
    if (rule.includes && Object.keys(rule.includes).length > 0) continue;
    const names = rule.names ?? (rule.name ? [rule.name] : []);
    if (!Array.isArray(names) || names.length === 0) throw bad(`syscalls[${i}] names no syscall`);
    if (!isAction(rule.action)) throw bad(`syscalls[${i}].action ${JSON.stringify(rule.action)} is not a seccomp action`);
    const s: SeccompSyscall = { names: names.map(String), action: rule.action };
    if (typeof rule.errnoRet === 'number') s.errnoRet = rule.errnoRet;
    if (Array.isArray(rule.args) && rule.args.length > 0) s.args = rule.args as SeccompArg[];
    syscalls.push(s);
  }
  out.syscalls = syscalls;
  return out;
}

function isAction(a: unknown): a is SeccompAction {
  return typeof a === 'string' && (SECCOMP_ACTIONS as readonly string[]).includes(a);
}
