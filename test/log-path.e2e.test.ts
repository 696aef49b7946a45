/**
 * Container logs stay beneath the pod's log_directory (issue 11, item 5), against a real daemon
 * with real conmon: a log_path through a symbolic link below the directory, or a log file that is
 * a link (dangling or not), is refused at CreateContainer with nothing made where the link points;
 * a log_directory that is itself a link is fine; ReopenContainerLog refuses a path changed under
 * a running container. The links point at a temp dir of this test, and /etc is listed before and
 * after each test to show nothing appeared there either.
 */
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';

const paths = tempPaths('pc-logp-');
const daemon = new Daemon(paths);
const logDir = join(paths.base, 'pod-logs');
/** Where the planted links point, one per test: outside the log directory, standing in for /etc. */
let target = '';
let registry: RegistryFixture;
let pod = '';
let etcBefore: string[] = [];

const LOOP = ['/bin/sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done'];
const etc = (): string[] => readdirSync('/etc').sort();
const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

function config(name: string, logPath: string, command = LOOP): Record<string, unknown> {
  return { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command, logPath };
}
async function create(name: string, logPath: string, podId = pod, command = LOOP): Promise<string> {
  return (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: podId, config: config(name, logPath, command), sandboxConfig: {} })).containerId;
}
async function names(): Promise<string[]> {
  return (await daemon.cri.call<{ containers: { metadata: { name: string } }[] }>('ListContainers', {})).containers.map((c) => c.metadata.name);
}

/**
 * CreateContainer with a path that must be refused. Should the daemon accept it (today's code did),
 * the container is started and its output awaited, so the test shows where the log went.
 */
async function attempt(name: string, logPath: string): Promise<ServiceError | null> {
  let id: string;
  try {
    id = await create(name, logPath);
  } catch (err) {
    return err as ServiceError;
  }
  await daemon.cri.call('StartContainer', { containerId: id }).catch(() => undefined);
  await eventually(`${name} to write some output`, async () => {
    const s = (await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId: id })).status;
    return s.state !== 'CONTAINER_CREATED';
  }).catch(() => undefined);
  return null;
}

function assertRefused(err: ServiceError | null, pattern: RegExp): void {
  assert.ok(err, 'CreateContainer was refused');
  assert.equal(err.code, grpcStatus.INVALID_ARGUMENT, `code ${err.code} (${err.details})`);
  assert.match(err.details, pattern);
}

before(async () => {
  etcBefore = etc();
  registry = await startWithBusybox(daemon);
  mkdirSync(logDir, { recursive: true });
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('logpod', { logDirectory: logDir }) })).podSandboxId;
});
after(async () => {
  await daemon.dispose();
  await registry?.stop();
});
beforeEach(() => {
  target = mkdtempSync(join(paths.base, 'elsewhere-'));
});
afterEach(() => assert.deepEqual(etc(), etcBefore, 'nothing appeared in (or went from) /etc'));

describe('CreateContainer keeps the log beneath the log directory', () => {
  test('(a) a log_path through a symlinked subdirectory is refused; nothing is made where it points', async () => {
    symlinkSync(target, join(logDir, 'sub'));
    const shallow = await attempt('through-link', 'sub/x.log');
    const deep = await attempt('through-link-deep', 'sub/newdir/x.log');
    assert.deepEqual(readdirSync(target), [], 'no file and no directory was made in the link target');
    assertRefused(shallow, /log_path "sub\/x\.log": "sub" is a symbolic link beneath the pod's log_directory/);
    assertRefused(deep, /"sub" is a symbolic link/);
    // Refused before any record or reservation: the name is free, and a good path works.
    assert.ok(!(await names()).some((n) => n.startsWith('through-link')), 'no container was left behind');
    const id = await create('through-link', 'through-link/0.log');
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });

  test('(b) a log file that is a link is refused: dangling, to a file, or not a regular file', async () => {
    writeFileSync(join(target, 'existing'), 'precious\n');
    symlinkSync(join(target, 'newfile'), join(logDir, 'dangling.log'));
    symlinkSync(join(target, 'existing'), join(logDir, 'linked.log'));
    mkdirSync(join(logDir, 'adir.log'));
    const dangling = await attempt('dangling', 'dangling.log');
    const linked = await attempt('linked', 'linked.log');
    const adir = await attempt('adir', 'adir.log');
    assert.ok(!existsSync(join(target, 'newfile')), 'the dangling link target was not created');
    assert.equal(readFileSync(join(target, 'existing'), 'utf8'), 'precious\n', 'the linked file was not written');
    assert.deepEqual(readdirSync(target), ['existing']);
    assertRefused(dangling, /"dangling\.log" is a symbolic link/);
    assertRefused(linked, /"linked\.log" is a symbolic link/);
    assertRefused(adir, /"adir\.log" is not a regular file/);
    assert.ok(lstatSync(join(logDir, 'dangling.log')).isSymbolicLink(), 'the link itself is left as it was');
  });

  test('log_path text: a trailing "/" or "." names no file', async () => {
    await rejects(create('trailing', 'trailing/'), grpcStatus.INVALID_ARGUMENT, /log_path must name a file, got "trailing\/"/);
    await rejects(create('dot', '.'), grpcStatus.INVALID_ARGUMENT, /log_path must name a file/);
    await rejects(create('dotdot', 'a/../../x.log'), grpcStatus.INVALID_ARGUMENT, /log_path must not contain "\.\."/);
    await rejects(create('absolute', '/etc/x.log'), grpcStatus.INVALID_ARGUMENT, /log_path must be relative/);
    assert.ok(!existsSync(join(logDir, 'trailing')));
  });

  test('(c) a log_directory that is itself a link works: the log is in the real directory, and conmon has the real path', async () => {
    const real = join(paths.base, 'real-logs');
    const linked = join(paths.base, 'linked-logs');
    mkdirSync(real);
    symlinkSync(real, linked);
    const own = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('linkedpod', { logDirectory: linked }) })).podSandboxId;
    const id = await create('c', 'c/0.log', own, ['/bin/sh', '-c', 'echo hello-real; sleep 1000']);
    const s = (await daemon.cri.call<{ status: { logPath: string } }>('ContainerStatus', { containerId: id })).status;
    assert.equal(s.logPath, join(linked, 'c/0.log'), 'status shows the path as kubelet named it');
    assert.ok(lstatSync(join(real, 'c/0.log')).isFile(), 'the daemon made the file at CreateContainer, in the real directory');
    await daemon.cri.call('StartContainer', { containerId: id });
    await eventually('output in the real directory', () => lines(join(real, 'c/0.log')).some((l) => l.endsWith(' hello-real')));
    const conmonPid = readFileSync(join(paths.root, 'containers', id, 'conmon.pid'), 'utf8').trim();
    const argv = readFileSync(`/proc/${conmonPid}/cmdline`, 'utf8').split('\0');
    assert.ok(argv.includes(`k8s-file:${join(real, 'c/0.log')}`), `conmon was given the real path: ${argv.join(' ')}`);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: own });
  });

  test('(e) kubelet\'s layout <container>/<restart>.log: the daemon makes the directory and the file, and logs arrive', async () => {
    const log = join(logDir, 'app/0.log');
    const id = await create('app', 'app/0.log', pod, ['/bin/sh', '-c', 'echo hello-app; sleep 1000']);
    const st = lstatSync(log);
    assert.ok(st.isFile(), 'made at CreateContainer, before conmon runs');
    assert.equal(st.mode & 0o777, 0o600, 'with conmon\'s own mode');
    await daemon.cri.call('StartContainer', { containerId: id });
    await eventually('output in app/0.log', () => lines(log).some((l) => l.endsWith(' stdout F hello-app')));
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });
});

describe('ReopenContainerLog keeps the log beneath the log directory', () => {
  test('(d) a path changed under a running container is refused, nothing is written through it, and conmon keeps its file', async () => {
    const dir = join(logDir, 'r');
    const log = join(dir, '0.log');
    const victim = join(target, 'victim');
    writeFileSync(victim, 'precious\n');
    const id = await create('r', 'r/0.log');
    await daemon.cri.call('StartContainer', { containerId: id });
    await eventually('some output', () => lines(log).length > 2);
    renameSync(log, `${log}.1`); // kubelet's rotation: the old file moves away, conmon keeps it open
    const reopen = (): Promise<unknown> => daemon.cri.call('ReopenContainerLog', { containerId: id });

    // conmon opens <log>.tmp with O_TRUNC and follows a link: that would truncate and fill the victim.
    symlinkSync(victim, `${log}.tmp`);
    await rejects(reopen(), grpcStatus.FAILED_PRECONDITION, /"r\/0\.log\.tmp" is a symbolic link/);
    unlinkSync(`${log}.tmp`);
    // The log file itself replaced with a link.
    symlinkSync(victim, log);
    await rejects(reopen(), grpcStatus.FAILED_PRECONDITION, /"r\/0\.log" is a symbolic link/);
    unlinkSync(log);
    // The container's log directory swapped for a link out.
    renameSync(dir, `${dir}.moved`);
    symlinkSync(target, dir);
    await rejects(reopen(), grpcStatus.FAILED_PRECONDITION, /"r" is a symbolic link/);
    unlinkSync(dir);
    renameSync(`${dir}.moved`, dir);

    // conmon still writes to the file it had, and nowhere else.
    const before = lines(`${log}.1`).length;
    await eventually('more output in the rotated file', () => lines(`${log}.1`).length > before + 2);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the victim was not truncated or written');
    assert.deepEqual(readdirSync(target), ['victim'], 'nothing was made in the link target');
    assert.ok(!existsSync(log), 'no new log file while refused');

    // Put right, the reopen works as kubelet expects.
    await reopen();
    assert.ok(lstatSync(log).isFile(), 'the new file exists when the call returns');
    await eventually('output in the reopened file', () => lines(log).length > 1);
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });
});
