/**
 * conmon faults end to end [issue 12 items 5 and 16]: a conmon killed under a running container,
 * a conmon killed while the daemon is down, a `runc create` that never returns (a named FAKE
 * runtime handler), and a pull whose layer is missing (a named FAKE proxy in front of the real
 * registry). Each checks that nothing is left running or logging afterwards.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, pausePodConfig, podConfig, tempPaths } from './daemon.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage } from './image-builder.js';
import { pidsMatching, processAlive } from './host-state.js';

interface Status { id: string; state: string; reason: string; message: string; exitCode: number }

const paths = tempPaths('pc-cmf-');
const daemon = new Daemon(paths);
const IMAGE = 'busybox:1.36';
const FAKE_HANDLER = 'fake-blocking-runc';
const BLOCKED_PIDS = join(paths.base, 'fake-runc-blocked.pids');
/** How long the daemon gives conmon to report a pid here (30 s by default). */
const CONMON_CREATE_TIMEOUT_MS = 3_000;
/** The daemon polls conmon every second: a few polls, generously. */
const LOST_DEADLINE_MS = 10_000;
let registry: RegistryFixture;
let configPath = '';
let pod = '';

/**
 * FAKE runtime handler: real runc, except that `runc create` of a bundle whose config.json
 * mentions PODCHART_FAKE_BLOCK never returns, as runc does on a 1 MiB sysctl key. Its pid is
 * recorded so the test can tell it was killed.
 */
function writeFakeBlockingRunc(): string {
  const path = join(paths.base, FAKE_HANDLER);
  writeFileSync(path, `#!/bin/sh
prev=""; bundle=""; create=0
for a in "$@"; do
  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle="$a"; fi
  if [ "$a" = "create" ]; then create=1; fi
  prev="$a"
done
if [ "$create" = 1 ] && [ -n "$bundle" ] && grep -q PODCHART_FAKE_BLOCK "$bundle/config.json" 2>/dev/null; then
  echo $$ >> ${BLOCKED_PIDS}
  exec sleep 600
fi
exec /usr/sbin/runc "$@"
`);
  chmodSync(path, 0o755);
  return path;
}

async function run(name: string, command: string[], extra: Record<string, unknown> = {}, podId = pod): Promise<string> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: podId, config: { metadata: { name, attempt: 0 }, image: { image: IMAGE }, command, ...extra }, sandboxConfig: {},
  });
  await daemon.cri.call('StartContainer', { containerId });
  return containerId;
}

async function status(id: string): Promise<Status> {
  return (await daemon.cri.call<{ status: Status }>('ContainerStatus', { containerId: id })).status;
}

/** The conmon of a container: the one process whose command line names it with --cid. */
function conmonOf(id: string): number {
  const pids = pidsMatching(`--cid ${id}`);
  assert.equal(pids.length, 1, `one conmon for ${id}: ${pids.join(',')}`);
  return pids[0]!;
}

/** The children of `parent`, from /proc (the container's process is conmon's child). */
function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

const LOST_MESSAGE = (conmonPid: number): RegExp =>
  new RegExp(`^conmon \\(pid ${conmonPid}\\) exited while the container was running; its output is no longer logged$`);

async function lost(id: string, conmonPid: number, timeoutMs = LOST_DEADLINE_MS): Promise<Status> {
  return eventually(`container ${id} to be CONTAINER_UNKNOWN after its conmon died`, async () => {
    const s = await status(id);
    return s.state === 'CONTAINER_UNKNOWN' && LOST_MESSAGE(conmonPid).test(s.message) ? s : null;
  }, timeoutMs);
}

/** Stop, then Remove, each succeeding, and the container's process gone. */
async function stopAndRemove(id: string, containerPid: number): Promise<void> {
  await daemon.cri.call('StopContainer', { containerId: id, timeout: 2 }, 30_000);
  const stopped = await status(id);
  assert.equal(stopped.state, 'CONTAINER_EXITED');
  assert.equal(processAlive(containerPid), false, `the container's process ${containerPid} is gone after Stop`);
  await daemon.cri.call('RemoveContainer', { containerId: id }, 30_000);
  await rejects(status(id), grpcStatus.NOT_FOUND, /not found/);
}

before(async () => {
  registry = await startRegistry();
  const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }, format: 'docker' });
  await pushImage(registry, 'library/busybox', '1.36', image);
  configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({
    registries: { hosts: { 'docker.io': { mirrors: [registry.url] } } },
    runtimeHandlers: { [FAKE_HANDLER]: { path: writeFakeBlockingRunc() } },
    conmonCreateTimeoutMs: CONMON_CREATE_TIMEOUT_MS,
  }));
  await daemon.start({ PODCHART_CONFIG: configPath });
  await daemon.cri.callImage('PullImage', { image: { image: IMAGE } }, 120_000);
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('cmfpod') })).podSandboxId;
});

after(async () => {
  // Whatever a failing run left (a blocked fake runc, a container without conmon).
  if (existsSync(BLOCKED_PIDS)) {
    for (const pid of readFileSync(BLOCKED_PIDS, 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  }
  await daemon.dispose();
  await registry?.stop();
});

describe('conmon killed under a running container', () => {
  test('ReopenContainerLog answers FAILED_PRECONDITION at once, the container becomes UNKNOWN with the reason, Stop and Remove kill and clean it', async () => {
    const id = await run('lostconmon', ['sleep', '3600']);
    const conmonPid = conmonOf(id);
    const [containerPid] = childrenOf(conmonPid);
    assert.ok(containerPid, `conmon ${conmonPid} has the container's process as its child`);
    process.kill(conmonPid, 'SIGKILL');
    await eventually(`conmon ${conmonPid} to be gone`, () => !processAlive(conmonPid));
    // At once, before the conmon watch has noticed: the control fifo has no reader. A blocking open
    // would hang each call (and, four of them, libuv's whole thread pool) until its deadline.
    const reopens = await Promise.allSettled([1, 2, 3, 4].map(() => daemon.cri.call('ReopenContainerLog', { containerId: id }, 5_000)));
    for (const r of reopens) {
      assert.ok(r.status === 'rejected', 'ReopenContainerLog must be refused');
      const err = r.reason as ServiceError;
      assert.equal(err.code, grpcStatus.FAILED_PRECONDITION, `ReopenContainerLog: ${err.code} ${err.details}`);
      assert.match(err.details, /conmon is not running|not running/);
    }
    // Nothing is left holding the daemon: the next call is answered.
    await daemon.cri.call('Version', {}, 5_000);
    const s = await lost(id, conmonPid);
    assert.equal(s.reason, 'ConmonExited');
    assert.equal(processAlive(containerPid), true, 'the container still runs: only conmon died');
    // Reopen once it is known lost: refused by state, promptly too.
    await rejects(daemon.cri.call('ReopenContainerLog', { containerId: id }, 5_000), grpcStatus.FAILED_PRECONDITION, /not running/);
    await stopAndRemove(id, containerPid);
  });

  test('a conmon killed while the daemon is down: restore reports the container UNKNOWN with the reason', async () => {
    const id = await run('lostwhiledown', ['sleep', '3600']);
    const conmonPid = conmonOf(id);
    const [containerPid] = childrenOf(conmonPid);
    assert.ok(containerPid);
    await daemon.kill9();
    process.kill(conmonPid, 'SIGKILL');
    await eventually(`conmon ${conmonPid} to be gone`, () => !processAlive(conmonPid));
    await daemon.start({ PODCHART_CONFIG: configPath });
    // Decided by restore itself, not by the first poll after it.
    const s = await status(id);
    assert.equal(s.state, 'CONTAINER_UNKNOWN', `restored as ${s.state}`);
    assert.match(s.message, LOST_MESSAGE(conmonPid));
    await stopAndRemove(id, containerPid);
  });

  test('a container whose conmon exits normally (the container ended) is EXITED, never UNKNOWN', async () => {
    const id = await run('quick', ['sh', '-c', 'exit 3']);
    const s = await eventually('container to exit', async () => {
      const st = await status(id);
      return st.state === 'CONTAINER_EXITED' ? st : null;
    }, 15_000);
    assert.equal(s.exitCode, 3);
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });
});

describe('a runc create that never returns (FAKE runtime handler)', () => {
  test('StartContainer fails after the conmon timeout and kills conmon and the blocked runc', async () => {
    const fakePod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('cmffake'), runtimeHandler: FAKE_HANDLER })).podSandboxId;
    const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
      podSandboxId: fakePod,
      config: { metadata: { name: 'blocked', attempt: 0 }, image: { image: IMAGE }, command: ['sleep', '3600'], envs: [{ key: 'PODCHART_FAKE_BLOCK', value: Buffer.from('1') }] },
      sandboxConfig: {},
    });
    await rejects(daemon.cri.call('StartContainer', { containerId }, 30_000), grpcStatus.INTERNAL, /no pid reported in 3000 ms/);
    const blocked = readFileSync(BLOCKED_PIDS, 'utf8').split('\n').filter(Boolean).map(Number);
    assert.ok(blocked.length > 0, 'the fake runc create ran and blocked');
    await eventually('the blocked runc create and its conmon to be gone', () =>
      blocked.every((pid) => !processAlive(pid)) && pidsMatching(`--cid ${containerId}`).length === 0, 10_000);
    await daemon.cri.call('RemoveContainer', { containerId });
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: fakePod });
  });
});

/** FAKE: a proxy in front of the real registry that answers 404 for one blob. */
async function startMissingBlobProxy(target: string, digest: string): Promise<{ host: string; stop(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      if (path.includes(`/blobs/${digest}`)) {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] }));
        return;
      }
      const upstream = await fetch(`${target}${path}`, { method: req.method ?? 'GET', headers: { Accept: req.headers.accept ?? '*/*' }, redirect: 'manual' });
      const headers: Record<string, string> = { 'Content-Type': upstream.headers.get('content-type') ?? 'application/octet-stream' };
      const digestHeader = upstream.headers.get('docker-content-digest');
      if (digestHeader !== null) headers['docker-content-digest'] = digestHeader;
      res.writeHead(upstream.status, headers).end(Buffer.from(await upstream.arrayBuffer()));
    })().catch((err: unknown) => res.writeHead(502).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a pull that fails on a layer', () => {
  test('stops its progress report: no "pulling:" line after the failure', async () => {
    const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }, { compression: 'gzip', entries: [{ path: '/x', type: 'file', content: 'x\n' }] }], config: { Cmd: ['/bin/sh'] } });
    await pushImage(registry, 'test/missinglayer', '1', image);
    const proxy = await startMissingBlobProxy(registry.url, image.layers[1]!.digest);
    try {
      const ref = `${proxy.host}/test/missinglayer:1`;
      await assert.rejects(daemon.cri.callImage('PullImage', { image: { image: ref } }, 60_000));
      const ours = (): string[] => daemon.logs().split('\n').filter((l) => l.includes(ref));
      // The daemon says when it stops the report; on a leaked timer that line never comes.
      await eventually('the failed pull to stop its progress report', () => ours().some((l) => l.includes('"msg":"pull progress stopped"')), 10_000);
      const stoppedAt = ours().findIndex((l) => l.includes('"msg":"pull progress stopped"'));
      // The report runs every 2 s: over a window of two periods (bounded by its deadline, and
      // expected to time out), no further "pulling:" line for this image may appear.
      const later = (): boolean => ours().slice(stoppedAt + 1).some((l) => l.includes('"msg":"pulling:'));
      await assert.rejects(eventually('a "pulling:" line after the failed pull stopped', later, 4_500), /timed out/);
    } finally {
      await proxy.stop();
    }
  });
});

describe("the pause process's conmon killed", () => {
  test('the pod stays ready; the pause is watched by its pid, and its end makes the pod NOTREADY', async () => {
    const p = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: pausePodConfig('cmf-pause') })).podSandboxId;
    const state = async (): Promise<string> => (await daemon.cri.call<{ status: { state: string } }>('PodSandboxStatus', { podSandboxId: p })).status.state;
    const info = await daemon.cri.call<{ info: { info: string } }>('PodSandboxStatus', { podSandboxId: p, verbose: true });
    const pausePid = (JSON.parse(info.info.info) as { pid: number }).pid;
    const conmonPid = Number(readFileSync(join(paths.run, 'sandboxes', p, 'conmon.pid'), 'utf8'));
    assert.ok(processAlive(pausePid) && processAlive(conmonPid));
    process.kill(conmonPid, 'SIGKILL');
    await eventually("the daemon to notice the pause's conmon is gone", () => daemon.logs().includes(`"conmonPid":${conmonPid}`) && daemon.logs().includes('the pause is watched by its pid'), LOST_DEADLINE_MS);
    assert.equal(await state(), 'SANDBOX_READY', 'the pause still runs: the pod is still ready');
    process.kill(pausePid, 'SIGKILL');
    // No exit file will come (its conmon is gone): only the pid watch can see this.
    await eventually('the pod to be NOTREADY after its pause died', async () => (await state()) === 'SANDBOX_NOTREADY', LOST_DEADLINE_MS);
    await daemon.cri.call('StopPodSandbox', { podSandboxId: p }, 60_000);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: p }, 60_000);
    assert.deepEqual(pidsMatching(p), [], 'nothing of the pod runs');
  });
});
