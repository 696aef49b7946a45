/**
 * The RuntimeDefault profile's shape (what runc parses), its allow/deny choices, profile selection
 * from the security context, and Localhost profiles read from disk (OCI and Docker formats).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidArgument } from '../errors/catalogue.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, type CapabilityName } from './container-spec.js';
import type { LinuxContainerSecurityContext } from './cri-container-types.js';
import { defaultSeccompProfile, loadLocalhostProfile, SECCOMP_ACTIONS, seccompProfileFor, type SeccompProfile } from './seccomp-default.js';

const allowedUnconditionally = (p: SeccompProfile, name: string): boolean =>
  (p.syscalls ?? []).some((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args && s.names.includes(name));
const mentioned = (p: SeccompProfile, name: string): boolean => (p.syscalls ?? []).some((s) => s.names.includes(name));
const allowedAtAll = (p: SeccompProfile, name: string): boolean => (p.syscalls ?? []).some((s) => s.action === 'SCMP_ACT_ALLOW' && s.names.includes(name));
const DEFAULT = defaultSeccompProfile(DEFAULT_CAPABILITIES);

/** moby's `includes: {caps}` groups, written out again here so a slip in either copy shows. */
const BY_CAPABILITY: [CapabilityName, string[]][] = [
  ['CAP_SYS_ADMIN', ['bpf', 'clone3', 'mount', 'umount2', 'setns', 'unshare', 'sethostname', 'setdomainname', 'fsopen', 'open_tree', 'quotactl', 'syslog', 'perf_event_open']],
  ['CAP_SYS_BOOT', ['reboot']],
  ['CAP_SYS_MODULE', ['init_module', 'finit_module', 'delete_module']],
  ['CAP_SYS_PACCT', ['acct']],
  ['CAP_SYS_PTRACE', ['kcmp', 'pidfd_getfd', 'process_madvise']],
  ['CAP_SYS_RAWIO', ['iopl', 'ioperm']],
  ['CAP_SYS_TIME', ['settimeofday', 'stime', 'clock_settime', 'clock_settime64']],
  ['CAP_SYS_TTY_CONFIG', ['vhangup']],
  ['CAP_SYS_NICE', ['get_mempolicy', 'mbind', 'set_mempolicy']],
  ['CAP_SYSLOG', ['syslog']],
  ['CAP_BPF', ['bpf']],
  ['CAP_PERFMON', ['perf_event_open']],
  ['CAP_DAC_READ_SEARCH', ['open_by_handle_at']],
];

describe('defaultSeccompProfile', () => {
  test('is plain JSON of the OCI shape with known actions', () => {
    for (const p of [DEFAULT, defaultSeccompProfile([]), defaultSeccompProfile(ALL_CAPABILITIES)]) {
      assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
      assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
      assert.equal(p.defaultErrnoRet, 1);
      assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
      for (const s of p.syscalls ?? []) {
        assert.ok(SECCOMP_ACTIONS.includes(s.action), s.action);
        assert.ok(s.names.length > 0);
        for (const a of s.args ?? []) assert.match(a.op, /^SCMP_CMP_/);
      }
    }
  });

  test('no syscall name appears twice among unconditional rules, whatever the capabilities', () => {
    for (const p of [DEFAULT, defaultSeccompProfile(ALL_CAPABILITIES)]) {
      const names = (p.syscalls ?? []).filter((s) => !s.args).flatMap((s) => s.names);
      const dups = names.filter((n, i) => names.indexOf(n) !== i);
      assert.deepEqual(dups, []);
    }
  });

  test('allows what every process needs', () => {
    for (const name of ['read', 'write', 'exit_group', 'execve', 'mmap', 'openat', 'rt_sigreturn', 'futex', 'wait4', 'socket']) {
      assert.ok(allowedUnconditionally(defaultSeccompProfile([]), name), name);
    }
  });

  test('with the default capabilities, blocks the dangerous ones (not mentioned: the default action refuses them)', () => {
    for (const name of [
      'kexec_load', 'kexec_file_load', 'reboot', 'init_module', 'finit_module', 'delete_module', 'mount', 'umount2',
      'swapon', 'swapoff', 'bpf', 'keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'open_by_handle_at',
      'perf_event_open', 'userfaultfd', 'acct', 'pivot_root', 'settimeofday', 'io_uring_setup', 'sethostname',
    ]) {
      assert.ok(!mentioned(DEFAULT, name), name);
    }
  });

  test('each capability opens its syscalls, and only its own', () => {
    for (const [cap, names] of BY_CAPABILITY) {
      const withCap = defaultSeccompProfile([...DEFAULT_CAPABILITIES, cap]);
      for (const name of names) {
        assert.ok(allowedUnconditionally(withCap, name), `${name} with ${cap}`);
        assert.ok(!allowedAtAll(DEFAULT, name), `${name} without ${cap}`);
      }
    }
    // Even all capabilities but the ones that open them keep them shut.
    const allButAdmin = defaultSeccompProfile(ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN'));
    for (const name of ['mount', 'sethostname', 'setns', 'unshare', 'clone3']) assert.ok(!allowedAtAll(allButAdmin, name), name);
    // The ones two capabilities open need only one of them.
    assert.ok(allowedUnconditionally(defaultSeccompProfile(['CAP_BPF']), 'bpf'));
    assert.ok(allowedUnconditionally(defaultSeccompProfile(['CAP_SYS_ADMIN']), 'bpf'));
  });

  test('chroot follows CAP_SYS_CHROOT, which the default set has', () => {
    assert.ok(allowedUnconditionally(DEFAULT, 'chroot'));
    assert.ok(!mentioned(defaultSeccompProfile([]), 'chroot'));
  });

  test('ptrace and process_vm_* stay allowed without CAP_SYS_PTRACE (kernels ≥ 4.8)', () => {
    for (const name of ['ptrace', 'process_vm_readv', 'process_vm_writev']) assert.ok(allowedUnconditionally(defaultSeccompProfile([]), name), name);
  });

  test('without CAP_SYS_ADMIN: clone only without namespace flags, clone3 falls back with ENOSYS', () => {
    const rules = DEFAULT.syscalls ?? [];
    const clone = rules.filter((s) => s.names.includes('clone'));
    assert.deepEqual(clone.map((s) => s.args), [[{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]]);
    const clone3 = rules.filter((s) => s.names.includes('clone3'));
    assert.deepEqual(clone3.map((s) => [s.action, s.errnoRet]), [['SCMP_ACT_ERRNO', 38]]);
  });

  test('with CAP_SYS_ADMIN: clone and clone3 allowed outright, no filtered rule beside them', () => {
    const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']);
    for (const name of ['clone', 'clone3']) {
      assert.deepEqual((admin.syscalls ?? []).filter((s) => s.names.includes(name)).map((s) => [s.action, s.args]), [['SCMP_ACT_ALLOW', undefined]], name);
    }
  });
});

describe('seccompProfileFor', () => {
  const sc = (o: Partial<LinuxContainerSecurityContext>): LinuxContainerSecurityContext =>
    ({ privileged: false, seccomp: null, seccompProfilePath: '', ...o }) as LinuxContainerSecurityContext;
  const caps = DEFAULT_CAPABILITIES;
  test('chooses by the seccomp field, then the deprecated path', async () => {
    assert.equal(await seccompProfileFor(null, caps), null);
    assert.equal(await seccompProfileFor(sc({}), caps), null);
    assert.deepEqual(await seccompProfileFor(sc({ seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } }), caps), DEFAULT);
    assert.equal(await seccompProfileFor(sc({ seccomp: { profileType: 'Unconfined', localhostRef: '' } }), caps), null);
    assert.equal(await seccompProfileFor(sc({ privileged: true, seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } }), caps), null);
    assert.deepEqual(await seccompProfileFor(sc({ seccompProfilePath: 'runtime/default' }), caps), DEFAULT);
    assert.equal(await seccompProfileFor(sc({ seccompProfilePath: 'unconfined' }), caps), null);
    await assert.rejects(seccompProfileFor(sc({ seccompProfilePath: 'bogus' }), caps), InvalidArgument);
  });

  test('RuntimeDefault is built for the capabilities given', async () => {
    const admin = await seccompProfileFor(sc({ seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } }), [...caps, 'CAP_SYS_ADMIN']);
    assert.ok(admin && allowedUnconditionally(admin, 'sethostname'));
    const legacy = await seccompProfileFor(sc({ seccompProfilePath: 'docker/default' }), [...caps, 'CAP_SYS_TIME']);
    assert.ok(legacy && allowedUnconditionally(legacy, 'settimeofday'));
  });
});

describe('loadLocalhostProfile', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'podchart-seccomp-'));
    await mkdir(join(root, 'profiles'), { recursive: true });
    await writeFile(join(root, 'profiles/oci.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_LOG', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }));
    await writeFile(
      join(root, 'profiles/docker.json'),
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
        syscalls: [
          { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', comment: 'basics' },
          { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
          { name: 'getpid', action: 'SCMP_ACT_ALLOW', excludes: {} },
        ],
      }),
    );
    await writeFile(join(root, 'profiles/bad.json'), '{ not json');
    await writeFile(join(root, 'profiles/badaction.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_NOPE' }));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('reads an OCI profile from an absolute path under root', async () => {
    assert.deepEqual(await loadLocalhostProfile(root, '/profiles/oci.json'), { defaultAction: 'SCMP_ACT_LOG', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] });
  });

  test('reduces a Docker profile: archMap flattened, conditional allows dropped', async () => {
    assert.deepEqual(await loadLocalhostProfile(root, '/profiles/docker.json'), {
      defaultAction: 'SCMP_ACT_ERRNO',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      syscalls: [
        { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
        { names: ['getpid'], action: 'SCMP_ACT_ALLOW' },
      ],
    });
  });

  test('refuses relative refs, "..", missing files, bad JSON and unknown actions', async () => {
    await assert.rejects(loadLocalhostProfile(root, 'profiles/oci.json'), /must be an absolute path/);
    await assert.rejects(loadLocalhostProfile(root, '/profiles/../profiles/oci.json'), /must not contain "\.\."/);
    await assert.rejects(loadLocalhostProfile(root, '/profiles/missing.json'), /cannot be read/);
    await assert.rejects(loadLocalhostProfile(root, '/profiles/bad.json'), /not valid JSON/);
    await assert.rejects(loadLocalhostProfile(root, '/profiles/badaction.json'), /is not a seccomp action/);
    await assert.rejects(loadLocalhostProfile(root, 'x'), InvalidArgument);
  });
});
