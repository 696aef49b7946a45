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
import type { LinuxContainerSecurityContext } from './cri-container-types.js';
import { DEFAULT_SECCOMP_PROFILE, loadLocalhostProfile, SECCOMP_ACTIONS, seccompProfileFor } from './seccomp-default.js';

const allowedUnconditionally = (name: string): boolean =>
  (DEFAULT_SECCOMP_PROFILE.syscalls ?? []).some((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args && s.names.includes(name));
const mentioned = (name: string): boolean => (DEFAULT_SECCOMP_PROFILE.syscalls ?? []).some((s) => s.names.includes(name));

describe('DEFAULT_SECCOMP_PROFILE', () => {
  test('is plain JSON of the OCI shape with known actions', () => {
    const p = DEFAULT_SECCOMP_PROFILE;
    assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1);
    assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    for (const s of p.syscalls ?? []) {
      assert.ok(SECCOMP_ACTIONS.includes(s.action), s.action);
      assert.ok(s.names.length > 0);
      for (const a of s.args ?? []) assert.match(a.op, /^SCMP_CMP_/);
    }
  });

  test('no syscall name appears twice among unconditional rules', () => {
    const names = (DEFAULT_SECCOMP_PROFILE.syscalls ?? []).filter((s) => !s.args).flatMap((s) => s.names);
    const dups = names.filter((n, i) => names.indexOf(n) !== i);
    assert.deepEqual(dups, []);
  });

  test('allows what every process needs', () => {
    for (const name of ['read', 'write', 'exit_group', 'execve', 'mmap', 'openat', 'rt_sigreturn', 'futex', 'wait4', 'socket']) {
      assert.ok(allowedUnconditionally(name), name);
    }
  });

  test('blocks the dangerous ones (not mentioned: the default action refuses them)', () => {
    for (const name of [
      'kexec_load', 'kexec_file_load', 'reboot', 'init_module', 'finit_module', 'delete_module', 'mount', 'umount2',
      'swapon', 'swapoff', 'bpf', 'keyctl', 'add_key', 'request_key', 'unshare', 'setns', 'open_by_handle_at',
      'perf_event_open', 'userfaultfd', 'acct', 'pivot_root', 'settimeofday', 'io_uring_setup',
    ]) {
      assert.ok(!mentioned(name), name);
    }
  });

  test('clone only without namespace flags; clone3 falls back with ENOSYS', () => {
    const rules = DEFAULT_SECCOMP_PROFILE.syscalls ?? [];
    const clone = rules.find((s) => s.names.includes('clone'));
    assert.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
    const clone3 = rules.find((s) => s.names.includes('clone3'));
    assert.equal(clone3?.action, 'SCMP_ACT_ERRNO');
    assert.equal(clone3?.errnoRet, 38);
  });
});

describe('seccompProfileFor', () => {
  const sc = (o: Partial<LinuxContainerSecurityContext>): LinuxContainerSecurityContext =>
    ({ privileged: false, seccomp: null, seccompProfilePath: '', ...o }) as LinuxContainerSecurityContext;
  test('chooses by the seccomp field, then the deprecated path', async () => {
    assert.equal(await seccompProfileFor(null), null);
    assert.equal(await seccompProfileFor(sc({})), null);
    assert.equal(await seccompProfileFor(sc({ seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } })), DEFAULT_SECCOMP_PROFILE);
    assert.equal(await seccompProfileFor(sc({ seccomp: { profileType: 'Unconfined', localhostRef: '' } })), null);
    assert.equal(await seccompProfileFor(sc({ privileged: true, seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } })), null);
    assert.equal(await seccompProfileFor(sc({ seccompProfilePath: 'runtime/default' })), DEFAULT_SECCOMP_PROFILE);
    assert.equal(await seccompProfileFor(sc({ seccompProfilePath: 'unconfined' })), null);
    await assert.rejects(seccompProfileFor(sc({ seccompProfilePath: 'bogus' })), InvalidArgument);
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
