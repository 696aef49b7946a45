/**
 * Containers end to end: images pulled from a real registry, containers run by real runc under
 * conmon inside real pods, driven through the CRI socket as kubelet drives it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage } from './image-builder.js';
import { processAlive } from './host-state.js';

interface Status {
  id: string; state: string; exitCode: number; reason: string; message: string; logPath: string;
  createdAt: string; startedAt: string; finishedAt: string; imageRef: string; image: { image: string };
  labels: Record<string, string>;
}

const paths = tempPaths('pc-ctr-');
const daemon = new Daemon(paths);
const logDir = join(paths.base, 'pod-logs');
let registry: RegistryFixture;
let pod = '';
const IMAGE = 'busybox:1.36';

function containerConfig(name: string, command: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { metadata: { name, attempt: 0 }, image: { image: IMAGE }, command, logPath: `${name}/0.log`, labels: { app: name }, ...extra };
}

async function create(name: string, command: string[], extra: Record<string, unknown> = {}, podId = pod): Promise<string> {
  const r = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: podId, config: containerConfig(name, command, extra), sandboxConfig: {},
  });
  return r.containerId;
}
async function run(name: string, command: string[], extra: Record<string, unknown> = {}, podId = pod): Promise<string> {
  const id = await create(name, command, extra, podId);
  await daemon.cri.call('StartContainer', { containerId: id });
  return id;
}
async function status(id: string): Promise<Status> {
  return (await daemon.cri.call<{ status: Status }>('ContainerStatus', { containerId: id })).status;
}
async function exited(id: string): Promise<Status> {
  return eventually(`container ${id} to exit`, async () => {
    const s = await status(id);
    return s.state === 'CONTAINER_EXITED' ? s : null;
  }, 30_000);
}
/** The CRI log lines' content (timestamp stream tag content). */
function logLines(path: string): { stream: string; tag: string; text: string }[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => {
    const [ts, stream, tag, ...rest] = line.split(' ');
    assert.ok(ts && !Number.isNaN(Date.parse(ts)), `RFC3339 timestamp in "${line}"`);
    return { stream: stream ?? '', tag: tag ?? '', text: rest.join(' ') };
  });
}

before(async () => {
  registry = await startRegistry();
  const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['FROM_IMAGE=yes', 'PATH=/bin'] }, format: 'docker' });
  await pushImage(registry, 'library/busybox', '1.36', image);
  const gcImage = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }, { compression: 'gzip', entries: [{ path: '/gc', type: 'file', content: 'gc\n' }] }], config: { Cmd: ['/bin/sh'] } });
  await pushImage(registry, 'library/gcme', '1', gcImage);
  const configPath = join(paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ registries: { hosts: { 'docker.io': { mirrors: [registry.url] } } } }));
  await daemon.start({ PODCHART_CONFIG: configPath });
  await daemon.cri.callImage('PullImage', { image: { image: IMAGE } }, 120_000);
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('ctrpod', { logDirectory: logDir }) })).podSandboxId;
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
});

describe('container lifecycle', () => {
  test('create → start → exit 0: Completed, with its output in the CRI log format', async () => {
    const id = await create('hello', ['/bin/sh', '-c', 'echo out; echo err >&2; echo "env=$FROM_IMAGE"']);
    const created = await status(id);
    assert.equal(created.state, 'CONTAINER_CREATED');
    assert.equal(created.logPath, join(logDir, 'hello/0.log'));
    assert.equal(created.labels['app'], 'hello');
    assert.match(created.imageRef, /^docker\.io\/library\/busybox@sha256:/);
    await daemon.cri.call('StartContainer', { containerId: id });
    const done = await exited(id);
    assert.equal(done.exitCode, 0);
    assert.equal(done.reason, 'Completed');
    assert.ok(BigInt(done.finishedAt) >= BigInt(done.startedAt) && BigInt(done.startedAt) > 0n);
    const lines = await eventually('the log to hold three lines', () => (logLines(created.logPath).length >= 3 ? logLines(created.logPath) : null));
    assert.deepEqual(lines.map((l) => [l.stream, l.tag, l.text]).sort(), [['stderr', 'F', 'err'], ['stdout', 'F', 'env=yes'], ['stdout', 'F', 'out']].sort());
  });

  test('a non-zero exit is Error with its code', async () => {
    const id = await run('fails', ['/bin/sh', '-c', 'exit 3']);
    const done = await exited(id);
    assert.equal(done.exitCode, 3);
    assert.equal(done.reason, 'Error');
    // The operator's view of a container: its chart with EXITED marked, and why it moved.
    const { execFileSync } = await import('node:child_process');
    const { REPO } = await import('./daemon.js');
    const text = execFileSync(join(REPO, 'bin', 'podchart'), ['inspect', id.slice(0, 12), '--root', paths.root]).toString();
    assert.match(text, /\(container\)/);
    assert.match(text, /\* EXITED\s+REMOVE → REMOVING/);
    assert.match(text, /START {2}CREATED → STARTING {2}\(StartContainer#\d+\)/);
  });

  test('StopContainer sends the stop signal and honours the grace period, then SIGKILL', async () => {
    const polite = await run('polite', ['/bin/sh', '-c', 'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done']);
    const log = join(logDir, 'polite/0.log');
    await eventually('polite to be ready', () => logLines(log).some((l) => l.text === 'ready'));
    await daemon.cri.call('StopContainer', { containerId: polite, timeout: 10 });
    const s = await status(polite);
    assert.equal(s.state, 'CONTAINER_EXITED');
    assert.equal(s.exitCode, 7);
    assert.ok(logLines(log).some((l) => l.text === 'got TERM'));

    const stubborn = await run('stubborn', ['/bin/sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done']);
    await eventually('stubborn to be ready', () => logLines(join(logDir, 'stubborn/0.log')).some((l) => l.text === 'ready'));
    const started = Date.now();
    await daemon.cri.call('StopContainer', { containerId: stubborn, timeout: 1 });
    const elapsed = Date.now() - started;
    const k = await status(stubborn);
    assert.equal(k.exitCode, 137, 'killed by SIGKILL');
    assert.ok(elapsed >= 900, `waited the grace period (${elapsed} ms)`);
    await daemon.cri.call('StopContainer', { containerId: stubborn, timeout: 1 }); // idempotent
  });

  test('two containers of one pod talk over localhost', async () => {
    await run('server', ['/bin/sh', '-c', 'mkdir -p /tmp/www && echo hello-from-server > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www']);
    const client = await run('client', ['/bin/sh', '-c', 'for i in $(busybox seq 1 50); do busybox wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1']);
    const done = await exited(client);
    assert.equal(done.exitCode, 0);
    assert.ok(logLines(join(logDir, 'client/0.log')).some((l) => l.text === 'hello-from-server'));
  });

  test('RemoveContainer is forced on a running container and idempotent; ListContainers filters', async () => {
    const id = await run('sleeper', ['/bin/sh', '-c', 'sleep 1000']);
    assert.equal((await status(id)).state, 'CONTAINER_RUNNING');
    const list = async (filter: object): Promise<string[]> =>
      (await daemon.cri.call<{ containers: { id: string }[] }>('ListContainers', { filter })).containers.map((c) => c.id);
    assert.ok((await list({ state: { state: 'CONTAINER_RUNNING' } })).includes(id));
    assert.ok(!(await list({ state: { state: 'CONTAINER_EXITED' } })).includes(id));
    assert.deepEqual(await list({ id: id.slice(0, 10) }), [id]);
    assert.ok((await list({ podSandboxId: pod })).includes(id));
    assert.deepEqual(await list({ labelSelector: { app: 'sleeper' } }), [id]);
    await daemon.cri.call('RemoveContainer', { containerId: id });
    await rejects(status(id), grpcStatus.NOT_FOUND, /not found/);
    await daemon.cri.call('RemoveContainer', { containerId: id });
    await daemon.cri.call('StopContainer', { containerId: id, timeout: 0 });
  });

  test('a container over its memory limit is OOMKilled', async () => {
    const id = await run('hog', ['/bin/sh', '-c', 'busybox head -c 200000000 /dev/zero | busybox tail'], {
      linux: { resources: { memoryLimitInBytes: String(20 * 1024 * 1024) } },
    });
    const done = await exited(id);
    assert.equal(done.reason, 'OOMKilled');
    assert.equal(done.exitCode, 137);
  });
});

describe('exec, update, log reopen', () => {
  test('ExecSync: stdout and stderr apart, the exit code, the container\'s user and env', async () => {
    const id = await run('execd', ['/bin/sh', '-c', 'sleep 1000'], { envs: [{ key: 'FROM_CONFIG', value: Buffer.from('cfg') }] });
    const r = await daemon.cri.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>('ExecSync', {
      containerId: id, cmd: ['/bin/sh', '-c', 'echo out-$FROM_CONFIG; id -u; echo err >&2; exit 5'], timeout: 10,
    });
    assert.equal(r.stdout.toString(), 'out-cfg\n0\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 5);
  });

  test('ExecSync: a timeout kills the command; output is capped at 16 MiB for both streams together, the cut marked', async () => {
    const id = await run('slowexec', ['/bin/sh', '-c', 'sleep 1000']);
    const started = Date.now();
    await rejects(daemon.cri.call('ExecSync', { containerId: id, cmd: ['/bin/sh', '-c', 'sleep 30'], timeout: 1 }), grpcStatus.DEADLINE_EXCEEDED, /timed out after 1s and was killed/);
    assert.ok(Date.now() - started < 10_000);
    const ps = await daemon.cri.call<{ stdout: Buffer }>('ExecSync', { containerId: id, cmd: ['busybox', 'ps'], timeout: 10 });
    assert.ok(!/sleep 30/.test(ps.stdout.toString()), 'the timed-out command is gone');
    // 20 MB on each stream: the reply still fits kubelet's 16 MiB receive limit (the test client has that limit too).
    const big = await daemon.cri.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>('ExecSync', {
      containerId: id, cmd: ['/bin/sh', '-c', 'busybox head -c 20000000 /dev/zero & busybox head -c 20000000 /dev/zero >&2; wait'], timeout: 30,
    }, 60_000);
    const notes = [big.stdout, big.stderr].map((b) => /\n\[podchart: (stdout|stderr) cut: (\d+) bytes dropped, the reply holds at most \d+ bytes of output\]\n$/.exec(b.toString('latin1')));
    const kept = [big.stdout, big.stderr].reduce((n, b, i) => n + b.length - (notes[i]?.[0].length ?? 0), 0);
    assert.equal(kept, 16 * 1024 * 1024 - 64 * 1024);
    const dropped = notes.reduce((n, m) => n + Number(m?.[2] ?? 0), 0);
    assert.equal(kept + dropped, 40_000_000, 'every byte is either in the reply or counted as dropped');
    assert.equal(big.exitCode, 0);
  });

  test('ExecSync on a container that is not running is refused', async () => {
    const id = await create('notrunning', ['/bin/sh', '-c', 'true']);
    await rejects(daemon.cri.call('ExecSync', { containerId: id, cmd: ['true'], timeout: 1 }), grpcStatus.FAILED_PRECONDITION, /not running/);
    await rejects(daemon.cri.call('ExecSync', { containerId: 'f'.repeat(64), cmd: ['true'], timeout: 1 }), grpcStatus.NOT_FOUND, /not found/);
  });

  test('CheckpointContainer is refused with CRIU\'s own reason; the container keeps running', async () => {
    const id = await run('checkpointed', ['/bin/sh', '-c', 'sleep 1000']);
    // This host's criu cannot run (`criu check` fails on its kernel): the refusal says so, in criu's words.
    await rejects(daemon.cri.call('CheckpointContainer', { containerId: id, location: '/tmp/never.tar' }), grpcStatus.UNIMPLEMENTED, /^CheckpointContainer of [0-9a-f]{64} is not supported on this node: (CRIU cannot run here: `criu check` fails on this host \(criu [\d.]+, Linux .*\): .+|podchart does not write checkpoint archives yet)\. The container was not touched$/);
    assert.equal((await status(id)).state, 'CONTAINER_RUNNING');
    assert.equal(existsSync('/tmp/never.tar'), false, 'no archive');
    await rejects(daemon.cri.call('CheckpointContainer', { containerId: 'f'.repeat(64), location: '/tmp/x.tar' }), grpcStatus.NOT_FOUND, /not found/);
    await rejects(daemon.cri.call('CheckpointPod', { podSandboxId: pod }), grpcStatus.UNIMPLEMENTED, /CheckpointPod is not supported on this node/);
    await rejects(daemon.cri.call('RestorePod', {}), grpcStatus.UNIMPLEMENTED, /RestorePod is not supported on this node/);
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });

  test('UpdateContainerResources is applied by the runtime, persisted and shown in status', async () => {
    const id = await run('updatable', ['/bin/sh', '-c', 'sleep 1000']);
    await daemon.cri.call('UpdateContainerResources', { containerId: id, linux: { memoryLimitInBytes: String(64 * 1024 * 1024), cpuShares: '512' } });
    const limit = await daemon.cri.call<{ stdout: Buffer }>('ExecSync', { containerId: id, cmd: ['/bin/sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'], timeout: 10 });
    assert.equal(limit.stdout.toString().trim(), String(64 * 1024 * 1024));
    const s = (await daemon.cri.call<{ status: { resources: { linux: { memoryLimitInBytes: string; cpuShares: string } } } }>('ContainerStatus', { containerId: id })).status;
    assert.equal(s.resources.linux.memoryLimitInBytes, String(64 * 1024 * 1024));
    assert.equal(s.resources.linux.cpuShares, '512');
  });

  test('ReopenContainerLog: after kubelet moves the log away, new output goes to a new file', async () => {
    const id = await run('rotating', ['/bin/sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done']);
    const log = join(logDir, 'rotating/0.log');
    await eventually('some output', () => logLines(log).length > 2);
    const { renameSync } = await import('node:fs');
    renameSync(log, `${log}.1`);
    await daemon.cri.call('ReopenContainerLog', { containerId: id });
    assert.ok(existsSync(log), 'the new file exists when the call returns (critest looks at once)');
    await eventually('output in the reopened file', () => logLines(log).length > 1);
    assert.ok(logLines(`${log}.1`).length > 2, 'the rotated file keeps the old lines');
  });
});

describe('security context, mounts and users', () => {
  const sh = async (id: string, script: string): Promise<{ out: string; code: number }> => {
    const r = await daemon.cri.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>('ExecSync', { containerId: id, cmd: ['/bin/sh', '-c', script], timeout: 10 });
    return { out: r.stdout.toString().trim() + r.stderr.toString().trim(), code: r.exitCode };
  };
  const sleeper = (name: string, linux: object, extra: Record<string, unknown> = {}): Promise<string> =>
    run(name, ['/bin/sh', '-c', 'sleep 1000'], { linux, ...extra });

  test('run as a uid, as a username from the image, with supplemental groups', async () => {
    const byUid = await sleeper('byuid', { securityContext: { runAsUser: { value: '1000' }, runAsGroup: { value: '2000' }, supplementalGroups: ['3000'] } });
    assert.equal((await sh(byUid, 'id -u; id -g; id -G')).out, '1000\n2000\n2000 3000');
    const byName = await sleeper('byname', { securityContext: { runAsUsername: 'app' } });
    assert.equal((await sh(byName, 'id -u')).out, '1000');
  });

  test('readonly rootfs, drop ALL capabilities, no_new_privs, RuntimeDefault seccomp, masked paths', async () => {
    const id = await sleeper('locked', {
      securityContext: {
        readonlyRootfs: true, noNewPrivs: true, capabilities: { dropCapabilities: ['ALL'] }, seccomp: { profileType: 'RuntimeDefault' },
      },
    });
    const ro = await sh(id, 'touch /x');
    assert.notEqual(ro.code, 0);
    assert.match(ro.out, /Read-only file system/);
    const status = (await sh(id, 'cat /proc/self/status')).out;
    assert.match(status, /CapEff:\s+0000000000000000/);
    assert.match(status, /NoNewPrivs:\s+1/);
    assert.match(status, /Seccomp:\s+2/);
    // A masked path reads empty (bind of /dev/null); pick one this kernel has.
    const masked = ['/proc/timer_list', '/proc/keys', '/proc/sched_debug', '/proc/kcore'].find((p) => existsSync(p) && readFileSync(p).length > 0);
    assert.ok(masked, 'the host has a maskable /proc file');
    assert.equal((await sh(id, `busybox wc -c < ${masked}`)).out, '0', `${masked} is masked`);
  });

  test('added capabilities and privileged', async () => {
    const added = await sleeper('netadmin', { securityContext: { capabilities: { dropCapabilities: ['ALL'], addCapabilities: ['NET_ADMIN'] } } });
    const capEff = BigInt(`0x${/CapEff:\s+(\w+)/.exec((await sh(added, 'cat /proc/self/status')).out)?.[1] ?? '0'}`);
    assert.equal(capEff, 1n << 12n, 'exactly CAP_NET_ADMIN');
    const priv = await sleeper('priv', { securityContext: { privileged: true } });
    const hostBnd = /CapBnd:\s+(\w+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    assert.match((await sh(priv, 'cat /proc/self/status')).out, new RegExp(`CapEff:\\s+${hostBnd}`));
  });

  test('RuntimeDefault seccomp follows capabilities: sethostname with SYS_ADMIN, refused without', async () => {
    // A pod of its own: its containers share its UTS namespace, so the rename stays there.
    const own = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('renamed-pod', { logDirectory: logDir }) })).podSandboxId;
    const seccomp = { profileType: 'RuntimeDefault' };
    const admin = await run('sysadmin', ['/bin/sh', '-c', 'sleep 1000'], { linux: { securityContext: { seccomp, capabilities: { addCapabilities: ['SYS_ADMIN'] } } } }, own);
    const plain = await run('nosysadmin', ['/bin/sh', '-c', 'sleep 1000'], { linux: { securityContext: { seccomp } } }, own);
    const refused = await sh(plain, 'hostname not-allowed');
    assert.notEqual(refused.code, 0);
    assert.match(refused.out, /not permitted/i);
    const renamed = await sh(admin, 'hostname renamed && hostname');
    assert.equal(renamed.code, 0, renamed.out);
    assert.equal(renamed.out, 'renamed');
    assert.match((await sh(admin, 'cat /proc/self/status')).out, /Seccomp:\s+2/, 'under the filter, not unconfined');
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: own });
  });

  test('bind mounts: readonly, read-write, and a missing host dir created', async () => {
    const shared = join(paths.base, 'shared');
    const missing = join(paths.base, 'made-by-podchart');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(shared, { recursive: true });
    writeFileSync(join(shared, 'hello'), 'from host\n');
    const id = await run('mounts', ['/bin/sh', '-c', 'sleep 1000'], {
      mounts: [
        { containerPath: '/ro', hostPath: shared, readonly: true },
        { containerPath: '/rw', hostPath: missing, readonly: false },
      ],
    });
    assert.equal((await sh(id, 'cat /ro/hello')).out, 'from host');
    assert.notEqual((await sh(id, 'touch /ro/nope')).code, 0);
    assert.equal((await sh(id, 'echo written > /rw/file && echo ok')).out, 'ok');
    assert.equal(readFileSync(join(missing, 'file'), 'utf8'), 'written\n');
  });

  test('a container joins its pod\'s network, IPC and UTS namespaces', async () => {
    const id = await sleeper('joined', {});
    const podInfo = JSON.parse((await daemon.cri.call<{ info: Record<string, string> }>('PodSandboxStatus', { podSandboxId: pod, verbose: true })).info['info'] ?? '{}') as { netnsPath: string; stateDir: string };
    const ctrInfo = JSON.parse((await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: id, verbose: true })).info['info'] ?? '{}') as { pid: number };
    const { readlinkSync, statSync } = await import('node:fs');
    // The pod's namespaces by the files that hold them (its netns and pins), with a pause or without.
    const held = { net: podInfo.netnsPath, ipc: join(podInfo.stateDir, 'ns', 'ipc'), uts: join(podInfo.stateDir, 'ns', 'uts') };
    for (const [ns, file] of Object.entries(held)) {
      assert.equal(readlinkSync(`/proc/${ctrInfo.pid}/ns/${ns}`), `${ns}:[${statSync(file).ino}]`, ns);
    }
    assert.notEqual(readlinkSync(`/proc/${ctrInfo.pid}/ns/uts`), readlinkSync('/proc/self/ns/uts'), "not the node's");
    assert.equal((await sh(id, 'hostname')).out, 'ctrpod');
  });
});

describe('images in use', () => {
  test('an image removed while a container runs on it keeps its data until that container goes', async () => {
    const { imageRef } = await daemon.cri.callImage<{ imageRef: string }>('PullImage', { image: { image: 'gcme:1' } }, 120_000);
    const id = await run('ongc', ['/bin/sh', '-c', 'sleep 1000'], { image: { image: 'gcme:1' } });
    await daemon.cri.callImage('RemoveImage', { image: { image: 'gcme:1' } });
    const listed = (await daemon.cri.callImage<{ images: { id: string }[] }>('ListImages', {})).images;
    assert.ok(!listed.some((i) => i.id === imageRef), 'no longer listed');
    const blob = join(paths.root, 'images', 'content', 'blobs', 'sha256', imageRef.slice(7));
    assert.ok(existsSync(blob), 'its data is kept while the container runs');
    const r = await daemon.cri.call<{ stdout: Buffer }>('ExecSync', { containerId: id, cmd: ['cat', '/gc'], timeout: 10 });
    assert.equal(r.stdout.toString(), 'gc\n');
    await daemon.cri.call('RemoveContainer', { containerId: id });
    await daemon.swept(); // collected by the janitor, after the reply
    assert.ok(!existsSync(blob), 'collected once the container is gone');
    assert.equal((await daemon.cri.callImage<{ image: unknown }>('ImageStatus', { image: { image: imageRef } })).image, null);
  });
});

describe('events', () => {
  test('GetContainerEvents streams created, started, stopped and deleted with the pod\'s status', async () => {
    type Ev = { containerId: string; containerEventType: string; createdAt: string; podSandboxStatus: { id: string } | null; containersStatuses: { id: string }[] };
    const client = daemon.cri.runtime as unknown as { GetContainerEvents(req: object): import('@grpc/grpc-js').ClientReadableStream<Ev> };
    const stream = client.GetContainerEvents({});
    const events: Ev[] = [];
    stream.on('data', (e: Ev) => events.push(e));
    stream.on('error', () => undefined); // cancelled at the end
    // The stream is live once the server has it; a first container proves it before we count.
    const probe = await create('probe', ['true']);
    await eventually('the stream to deliver', () => events.some((e) => e.containerId === probe));
    const id = await run('evented', ['/bin/sh', '-c', 'exit 0']);
    await exited(id);
    await daemon.cri.call('RemoveContainer', { containerId: id });
    const mine = await eventually('four events', () => {
      const got = events.filter((e) => e.containerId === id);
      return got.length >= 4 ? got : null;
    });
    assert.deepEqual(mine.map((e) => e.containerEventType), ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
    assert.equal(mine[0]?.podSandboxStatus?.id, pod);
    assert.ok(mine[0]?.containersStatuses.some((c) => c.id === id));
    assert.ok(BigInt(mine[3]?.createdAt ?? '0') >= BigInt(mine[0]?.createdAt ?? '0'));
    stream.cancel();
    await daemon.cri.call('RemoveContainer', { containerId: probe });
  });
});

describe('bad input', () => {
  test('unknown pod, missing image, escaping paths, a taken name', async () => {
    await rejects(daemon.cri.call('CreateContainer', { podSandboxId: 'f'.repeat(64), config: containerConfig('x', ['true']) }), grpcStatus.NOT_FOUND, /pod sandbox .* not found/);
    await rejects(daemon.cri.call('CreateContainer', { podSandboxId: pod, config: { ...containerConfig('x', ['true']), image: { image: 'docker.io/library/absent:9' } } }), grpcStatus.NOT_FOUND, /image "docker\.io\/library\/absent:9" is not present/);
    await rejects(create('x', ['true'], { logPath: '../../etc/passwd' }), grpcStatus.INVALID_ARGUMENT, /log_path must not contain "\.\."/);
    await rejects(create('x', ['true'], { logPath: '/abs.log' }), grpcStatus.INVALID_ARGUMENT, /log_path must be relative/);
    await rejects(create('x', ['true'], { mounts: [{ containerPath: 'rel', hostPath: '/tmp' }] }), grpcStatus.INVALID_ARGUMENT, /container_path must be an absolute path/);
    await rejects(create('x', ['true'], { mounts: [{ containerPath: '/data', hostPath: '/tmp/../etc' }] }), grpcStatus.INVALID_ARGUMENT, /host_path must not contain/);
    const id = await create('dup', ['true']);
    await rejects(create('dup', ['true']), grpcStatus.ALREADY_EXISTS, new RegExp(`already reserved for container ${id}`));
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });

  test('run_as_group without run_as_user or run_as_username is refused, leaving nothing behind', async () => {
    const { readdirSync } = await import('node:fs');
    const containersDir = join(paths.root, 'containers');
    const dirs = (): string[] => (existsSync(containersDir) ? readdirSync(containersDir).sort() : []);
    const ids = async (): Promise<string[]> => (await daemon.cri.call<{ containers: { id: string }[] }>('ListContainers', {})).containers.map((c) => c.id).sort();
    await daemon.swept(); // the earlier tests' dirs are gone before the count
    const [dirsBefore, idsBefore] = [dirs(), await ids()];
    await rejects(
      create('grouponly', ['true'], { linux: { securityContext: { runAsGroup: { value: '2000' } } } }),
      grpcStatus.INVALID_ARGUMENT,
      /LinuxContainerSecurityContext\.run_as_group \(2000\) requires run_as_user or run_as_username/,
    );
    assert.deepEqual(await ids(), idsBefore, 'no container listed');
    assert.deepEqual(dirs(), dirsBefore, 'no container dir');
    const stateDirs = join(paths.run, 'containers');
    assert.deepEqual(existsSync(stateDirs) ? readdirSync(stateDirs).filter((d) => !idsBefore.includes(d)) : [], [], 'no container state dir under runDir');
    // The name is still free, and a group with a user or a username is fine.
    const withUser = await create('grouponly', ['true'], { linux: { securityContext: { runAsUser: { value: '1000' }, runAsGroup: { value: '2000' } } } });
    await daemon.cri.call('RemoveContainer', { containerId: withUser });
    const withName = await create('groupname', ['true'], { linux: { securityContext: { runAsUsername: 'app', runAsGroup: { value: '2000' } } } });
    await daemon.cri.call('RemoveContainer', { containerId: withName });
  });

  test('a pod that is not ready refuses new containers', async () => {
    const stopped = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('stopped-pod', { logDirectory: logDir }) })).podSandboxId;
    await daemon.cri.call('StopPodSandbox', { podSandboxId: stopped });
    await rejects(create('late', ['true'], {}, stopped), grpcStatus.FAILED_PRECONDITION, /not ready/);
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: stopped });
  });

  test('a container created before its pod stopped cannot be started in the stopped pod', async () => {
    const podSandboxId = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('stopping-pod', { logDirectory: logDir }) })).podSandboxId;
    const id = await create('early', ['sleep', '1000'], {}, podSandboxId);
    await daemon.cri.call('StopPodSandbox', { podSandboxId });
    // Its pause process is gone: the namespaces it would join are gone or another process's.
    await rejects(daemon.cri.call('StartContainer', { containerId: id }), grpcStatus.FAILED_PRECONDITION, /its pod sandbox [0-9a-f]{64} is not ready/);
    const s = await status(id);
    assert.notEqual(s.state, 'CONTAINER_RUNNING');
    await daemon.cri.call('RemovePodSandbox', { podSandboxId });
  });

  test('a runc failure at start is passed on and leaves the container EXITED with StartError', async () => {
    const id = await create('nocmd', ['/no/such/binary']);
    // A command the image lacks is the caller's to fix: FAILED_PRECONDITION, saying what to set.
    await rejects(daemon.cri.call('StartContainer', { containerId: id }), grpcStatus.FAILED_PRECONDITION, /its command "\/no\/such\/binary" is not in the image.*set ContainerConfig\.command/);
    const s = await status(id);
    assert.equal(s.state, 'CONTAINER_EXITED');
    assert.equal(s.reason, 'StartError');
    await daemon.cri.call('RemoveContainer', { containerId: id });
  });
});

describe('pods and restarts', () => {
  test('removing a pod removes its containers', async () => {
    const p = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('doomed', { logDirectory: logDir }) })).podSandboxId;
    const c = await run('inner', ['/bin/sh', '-c', 'sleep 1000'], {}, p);
    const { info } = await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: c, verbose: true });
    const pid = (JSON.parse(info['info'] ?? '{}') as { pid: number }).pid;
    assert.ok(processAlive(pid));
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: p });
    assert.ok(!processAlive(pid), 'the container process is gone');
    await rejects(status(c), grpcStatus.NOT_FOUND, /not found/);
  });

  test('kill -9 mid-create rolls the container back; mid-start leaves it EXITED; mid-remove finishes', async () => {
    const configEnv = { PODCHART_CONFIG: join(paths.base, 'config.json') };
    const { readdirSync } = await import('node:fs');
    const containersDir = join(paths.root, 'containers');
    const before = new Set(existsSync(containersDir) ? readdirSync(containersDir) : []);
    const crashAt = async (point: string, call: () => Promise<unknown>): Promise<void> => {
      await daemon.stop();
      await daemon.start({ ...configEnv, PODCHART_FAULT: point });
      await assert.rejects(call(), (err: ServiceError) => err.code === grpcStatus.UNAVAILABLE);
      await daemon.waitExit();
      await daemon.start(configEnv);
    };
    // Half-created: rolled back, its name free again, its rootfs unmounted and its dir gone.
    await crashAt('container.create.rootfs', () => create('halfmade', ['true']));
    const leftovers = async (): Promise<string[]> => (existsSync(containersDir) ? readdirSync(containersDir) : []).filter((d) => !before.has(d));
    await eventually('the half-created container to be rolled back', async () => (await leftovers()).length === 0);
    const { mountPoints } = await import('./host-state.js');
    const ours = (m: string): boolean => m.startsWith(`${containersDir}/`) && !before.has(m.slice(containersDir.length + 1).split('/')[0] ?? '');
    assert.ok(!mountPoints().some(ours), 'no rootfs mount left');
    const again = await create('halfmade', ['true']);
    await daemon.cri.call('RemoveContainer', { containerId: again });
    // Half-started: conmon made it, runc start never ran.
    const starting = await create('halfstarted', ['/bin/sh', '-c', 'sleep 1000']);
    await crashAt('container.start.created', () => daemon.cri.call('StartContainer', { containerId: starting }));
    const s = await eventually('the half-started container to settle', async () => {
      const st = await status(starting);
      return st.state === 'CONTAINER_EXITED' ? st : null;
    });
    assert.equal(s.reason, 'StartError');
    await daemon.cri.call('RemoveContainer', { containerId: starting });
    // Half-removed: the process killed, then the daemon died; restore finishes the removal.
    const removing = await run('halfremoved', ['/bin/sh', '-c', 'sleep 1000']);
    await crashAt('container.remove.killed', () => daemon.cri.call('RemoveContainer', { containerId: removing }));
    await eventually('the half-removed container to be gone', async () => {
      try {
        await status(removing);
        return false;
      } catch (err) {
        return (err as ServiceError).code === grpcStatus.NOT_FOUND;
      }
    });
    await daemon.swept(); // the removals' unmounts and deletes follow their replies
    assert.deepEqual(await leftovers(), []);
  });

  test('kill -9 of the daemon: a running container is untouched, one that exited meanwhile shows its code', async () => {
    const keeps = await run('keeps', ['/bin/sh', '-c', 'sleep 1000']);
    const quits = await run('quits', ['/bin/sh', '-c', 'while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 42']);
    const pidOf = async (id: string): Promise<number> =>
      (JSON.parse((await daemon.cri.call<{ info: Record<string, string> }>('ContainerStatus', { containerId: id, verbose: true })).info['info'] ?? '{}') as { pid: number }).pid;
    const keepsPid = await pidOf(keeps);
    const quitsPid = await pidOf(quits);
    await daemon.kill9();
    writeFileSync(`/proc/${quitsPid}/root/tmp/go`, '');
    await eventually('quits to exit while the daemon is down', () => !processAlive(quitsPid));
    await daemon.start({ PODCHART_CONFIG: join(paths.base, 'config.json') });
    const k = await status(keeps);
    assert.equal(k.state, 'CONTAINER_RUNNING');
    assert.equal(await pidOf(keeps), keepsPid);
    assert.ok(processAlive(keepsPid));
    const q = await status(quits);
    assert.equal(q.state, 'CONTAINER_EXITED');
    assert.equal(q.exitCode, 42);
    assert.equal(q.reason, 'Error');
    await daemon.cri.call('StopContainer', { containerId: keeps, timeout: 0 });
    assert.equal((await status(keeps)).exitCode, 137);
  });
});
