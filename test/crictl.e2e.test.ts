/**
 * The stock crictl (cri-tools v1.26.1, unmodified: the Go CRI client code kubelet 1.26 uses)
 * driving a real podchartd verb by verb. Each verb is checked twice: what crictl prints (its JSON
 * where it has `-o json`), and the state behind it, read back through podchart's own CRI answers
 * or the host (processes, mounts, cgroups, files). Streaming verbs (exec -it, attach,
 * port-forward) come later.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { CRICTL as STOCK_CRICTL, needsCrictl } from './stock-clients.js';
import { Daemon, eventually, tempPaths, type DaemonPaths } from './daemon.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';
import { busyboxLayer, buildImage, pushImage, type BuiltImage } from './image-builder.js';
import { isMountPoint, processAlive, runcContainers } from './host-state.js';
import { untilEvent } from './until-event.js';
import { run, type RunResult } from '../host/exec.js';

const CRICTL = STOCK_CRICTL ?? 'crictl';
const skip = needsCrictl;
const CRICTL_DEADLINE_MS = 60_000;

// Made in `before`, so a skipped run leaves nothing behind (a Daemon writes its CNI config at once).
let paths: DaemonPaths;
let daemon: Daemon;
let files = ''; // crictl's config and the JSON files it reads
let registry: RegistryFixture;
let image: BuiltImage; // pulled with `crictl pull`
let runImage: BuiltImage; // pulled by `crictl run` itself
let REF = '';
let RUN_REF = '';

interface Item { id: string; metadata: { name: string; namespace?: string; uid?: string }; state: string; labels: Record<string, string> }
interface Usage { value: string }
interface Stats { attributes: { id: string; metadata: { name: string } }; cpu: { usageCoreNanoSeconds: Usage }; memory: { workingSetBytes: Usage };
  writableLayer: { fsId: { mountpoint: string } } }

/** Runs crictl on this daemon's socket only (an empty config of its own, so no /etc/crictl.yaml), bounded. */
function crictlArgs(args: string[]): string[] {
  const socket = `unix://${paths.socket}`;
  return ['--config', join(files, 'crictl.yaml'), '--runtime-endpoint', socket, '--image-endpoint', socket, '--timeout', '30s', ...args];
}
function crictl(...args: string[]): Promise<RunResult> {
  return run(CRICTL, crictlArgs(args), { timeoutMs: CRICTL_DEADLINE_MS });
}
/** A crictl call expected to fail: its result, whatever the exit code. */
function crictlFailing(...args: string[]): Promise<RunResult> {
  return run(CRICTL, crictlArgs(args), { timeoutMs: CRICTL_DEADLINE_MS, allowFailure: () => true });
}
/** `crictl <verb> -o json <args…>`: flags before the first argument, as urfave/cli parses them. */
async function crictlJson<T>(verb: string, ...args: string[]): Promise<T> {
  return JSON.parse((await crictl(verb, '-o', 'json', ...args)).stdout) as T;
}
const lines = (r: RunResult): string[] => r.stdout.split('\n').filter(Boolean);

/** The JSON file crictl reads a pod or container config from (snake_case, as crictl's Go structs want). */
function configFile(name: string, config: object): string {
  const path = join(files, `${name}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
const podLogDir = (pod: string): string => join(paths.base, 'logs', pod);
function podFile(name: string): string {
  return configFile(`pod-${name}`, {
    metadata: { name, namespace: 'crictl', uid: `${name}-${process.pid}`, attempt: 0 },
    hostname: name, log_directory: podLogDir(name), labels: { suite: 'crictl', pod: name }, linux: {},
  });
}
function containerFile(name: string, script: string, imageRef = REF): string {
  return configFile(`ctr-${name}`, { metadata: { name }, image: { image: imageRef }, command: ['/bin/sh', '-c', script], log_path: `${name}.log`, labels: { app: name } });
}

/** podchart's own view of a container: ContainerStatus, verbose for the pid. */
async function containerStatus(id: string): Promise<{ state: string; exitCode: number; pid: number }> {
  const r = await daemon.cri.call<{ status: { state: string; exitCode: number }; info: Record<string, string> }>('ContainerStatus', { containerId: id, verbose: true });
  return { ...r.status, pid: (JSON.parse(r.info['info'] ?? '{}') as { pid: number }).pid };
}
const podState = async (id: string): Promise<string> =>
  (await daemon.cri.call<{ status: { state: string } }>('PodSandboxStatus', { podSandboxId: id })).status.state;
const imageStatus = async (ref: string): Promise<{ id: string } | null> =>
  (await daemon.cri.callImage<{ image: { id: string } | null }>('ImageStatus', { image: { image: ref } })).image;
const blobPath = (digest: string): string => join(paths.root, 'images', 'content', 'blobs', 'sha256', digest.slice('sha256:'.length));

/** A file of the cgroup `pid` is in: the `controller` hierarchy on cgroup v1, the unified one on v2. */
function cgroupRead(pid: number, controller: string, v1File: string, v2File: string): string {
  const entries = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':'));
  const v1 = entries.find(([, ctrls]) => ctrls?.split(',').includes(controller));
  const v2 = entries.find(([h, ctrls]) => h === '0' && ctrls === '');
  const file = v1 ? join('/sys/fs/cgroup', controller, v1[2] ?? '', v1File) : join('/sys/fs/cgroup', v2?.[2] ?? '', v2File);
  return readFileSync(file, 'utf8').trim();
}
const cgroupV2 = (pid: number): boolean => !readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').some((l) => /^\d+:[^:]*memory/.test(l));
function cpuUsageNs(pid: number): bigint {
  if (!cgroupV2(pid)) return BigInt(cgroupRead(pid, 'cpuacct', 'cpuacct.usage', ''));
  return BigInt(/usage_usec (\d+)/.exec(cgroupRead(pid, 'cpu', '', 'cpu.stat'))?.[1] ?? '-1') * 1000n;
}

/** The content of a CRI log file, per stream ("<time> <stream> <tag> <content>" lines). */
function logContent(path: string, stream: 'stdout' | 'stderr'): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')).filter((f) => f[1] === stream).map((f) => f.slice(3).join(' '));
}
const ticks = (text: string[]): number[] => text.filter((l) => l.startsWith('tick ')).map((l) => Number(l.slice(5)));

describe('stock crictl against podchartd', { skip }, () => {
  let pod = '';
  let pausePid = 0;
  let netnsPath = '';
  let ctr = '';
  let ctrPid = 0;
  const ctrLog = (): string => join(podLogDir('walk'), 'ticker.log');

  before(async () => {
    paths = tempPaths('pc-cc-');
    daemon = new Daemon(paths);
    files = join(paths.base, 'crictl');
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'crictl.yaml'), '');
    registry = await startRegistry();
    image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }, format: 'docker' });
    runImage = await buildImage({
      layers: [{ compression: 'gzip', entries: busyboxLayer() }, { compression: 'none', entries: [{ path: '/marker', type: 'file', content: 'from the run image\n' }] }],
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    });
    REF = `${registry.host}/e2e/busybox:1.36`;
    RUN_REF = `${registry.host}/e2e/runme:1`;
    await pushImage(registry, 'e2e/busybox', '1.36', image);
    await pushImage(registry, 'e2e/runme', '1', runImage);
    await daemon.start();
  });

  after(async () => {
    await daemon?.dispose();
    await registry?.stop();
  });

  test('version and info: crictl reads this daemon\'s identity, readiness and config', async () => {
    const printed = Object.fromEntries(lines(await crictl('version')).map((l) => l.split(/:\s+/) as [string, string]));
    const v = await daemon.cri.call<{ version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }>('Version', {});
    assert.deepEqual(printed, { Version: v.version, RuntimeName: v.runtimeName, RuntimeVersion: v.runtimeVersion, RuntimeApiVersion: v.runtimeApiVersion });
    assert.equal(printed['RuntimeName'], 'podchart');
    assert.equal(printed['RuntimeApiVersion'], 'v1');

    const info = JSON.parse((await crictl('info')).stdout) as { status: { conditions: { type: string; status: boolean }[] }; config: { socket: string; rootDir: string } };
    const st = await daemon.cri.call<{ status: { conditions: { type: string; status: boolean }[] } }>('Status', {});
    assert.deepEqual(info.status.conditions.map((c) => [c.type, c.status]), st.status.conditions.map((c) => [c.type, c.status]));
    assert.deepEqual(info.status.conditions.map((c) => [c.type, c.status]), [['RuntimeReady', true], ['NetworkReady', true]]);
    assert.equal(info.config.socket, paths.socket);
    assert.equal(info.config.rootDir, paths.root);
  });

  test('pull, images, inspecti, imagefsinfo: the image from the loopback registry, stored', async () => {
    assert.equal(await imageStatus(REF), null, 'not there before the pull');
    assert.equal((await crictl('pull', REF)).stdout.trim(), `Image is up to date for ${image.configDigest}`);
    assert.equal((await imageStatus(REF))?.id, image.configDigest);
    for (const blob of [image.configDigest, ...image.layers.map((l) => l.digest)]) assert.ok(existsSync(blobPath(blob)), `blob ${blob} stored`);

    const listed = (await crictlJson<{ images: { id: string; repoTags: string[]; repoDigests: string[]; size: string }[] }>('images')).images;
    const mine = listed.find((i) => i.id === image.configDigest);
    assert.deepEqual(mine?.repoTags, [REF]);
    assert.deepEqual(mine?.repoDigests, [`${registry.host}/e2e/busybox@${image.manifestDigest}`]);
    const viaCri = (await daemon.cri.callImage<{ images: { id: string; size: string }[] }>('ListImages', {})).images;
    assert.equal(mine?.size, viaCri.find((i) => i.id === image.configDigest)?.size);
    assert.ok(lines(await crictl('images', '-q')).includes(image.configDigest));

    const inspected = await crictlJson<{ status: { id: string }; info: { manifestDigest: string; imageSpec: { config: { Cmd: string[] } }; layers: { digest: string }[] } }>('inspecti', REF);
    assert.equal(inspected.status.id, image.configDigest);
    assert.equal(inspected.info.manifestDigest, image.manifestDigest);
    assert.deepEqual(inspected.info.imageSpec.config.Cmd, ['/bin/sh']);
    assert.deepEqual(inspected.info.layers.map((l) => l.digest), image.layers.map((l) => l.digest));

    const fs = (await crictlJson<{ status: { fsId: { mountpoint: string }; usedBytes: Usage; inodesUsed: Usage } }>('imagefsinfo')).status;
    assert.equal(fs.fsId.mountpoint, join(paths.root, 'images'));
    const stored = image.layers.reduce((n, l) => n + l.size, image.configBytes.length);
    assert.ok(Number(fs.usedBytes.value) >= stored, `used ${fs.usedBytes.value} bytes holds the image's ${stored}`);
    assert.ok(Number(fs.inodesUsed.value) > 0);
    const cri = await daemon.cri.callImage<{ imageFilesystems: { usedBytes: Usage }[] }>('ImageFsInfo', {});
    assert.equal(fs.usedBytes.value, cri.imageFilesystems[0]?.usedBytes.value);
  });

  test('runp, pods, inspectp: a ready pod with its pause process, netns and IP', async () => {
    pod = (await crictl('runp', podFile('walk'))).stdout.trim();
    assert.match(pod, /^[0-9a-f]{64}$/);
    assert.equal(await podState(pod), 'SANDBOX_READY');

    const items = (await crictlJson<{ items: Item[] }>('pods')).items;
    const item = items.find((p) => p.id === pod);
    assert.equal(item?.state, 'SANDBOX_READY');
    assert.deepEqual(item?.metadata, { name: 'walk', namespace: 'crictl', uid: `walk-${process.pid}`, attempt: 0 });
    assert.deepEqual(item?.labels, { suite: 'crictl', pod: 'walk' });
    assert.deepEqual(lines(await crictl('pods', '--label', 'pod=walk', '-q')), [pod]);
    assert.deepEqual(lines(await crictl('pods', '--state', 'notready', '-q')), []);

    const inspected = await crictlJson<{ status: { id: string; state: string; network: { ip: string } }; info: { pid: number; netnsPath: string } }>('inspectp', pod);
    assert.equal(inspected.status.id, pod);
    assert.equal(inspected.status.state, 'SANDBOX_READY');
    const subnetPrefix = (daemon.network?.subnet ?? '').split('.').slice(0, 3).join('.') + '.';
    assert.ok(inspected.status.network.ip.startsWith(subnetPrefix), `pod IP ${inspected.status.network.ip} in ${daemon.network?.subnet}`);
    ({ pid: pausePid, netnsPath } = inspected.info);
    assert.ok(processAlive(pausePid), 'the pause process runs');
    assert.match(readFileSync(`/proc/${pausePid}/cmdline`, 'utf8'), /catatonit/);
    assert.ok(isMountPoint(netnsPath), `${netnsPath} is mounted`);
  });

  test('create, start, ps, inspect: the container runs the command of its JSON file', async () => {
    const script = 'echo started >&2; trap "echo bye; exit 7" TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done';
    ctr = (await crictl('create', pod, containerFile('ticker', script), podFile('walk'))).stdout.trim();
    assert.match(ctr, /^[0-9a-f]{64}$/);
    assert.equal((await containerStatus(ctr)).state, 'CONTAINER_CREATED');
    const created = (await crictlJson<{ containers: Item[] }>('ps', '-a')).containers.find((c) => c.id === ctr);
    assert.equal(created?.state, 'CONTAINER_CREATED');
    assert.ok(isMountPoint(join(paths.root, 'containers', ctr, 'rootfs', 'merged')), 'its rootfs is mounted');

    assert.equal((await crictl('start', ctr)).stdout.trim(), ctr);
    const running = await containerStatus(ctr);
    assert.equal(running.state, 'CONTAINER_RUNNING');
    ctrPid = running.pid;
    assert.equal(readFileSync(`/proc/${ctrPid}/cmdline`, 'utf8'), ['/bin/sh', '-c', script, ''].join('\0'));
    assert.ok(runcContainers(paths.run).includes(ctr), 'runc knows it');

    const listed = (await crictlJson<{ containers: (Item & { podSandboxId: string; imageRef: string })[] }>('ps')).containers.find((c) => c.id === ctr);
    assert.equal(listed?.state, 'CONTAINER_RUNNING');
    assert.equal(listed?.podSandboxId, pod);
    assert.equal(listed?.imageRef, `${registry.host}/e2e/busybox@${image.manifestDigest}`);
    assert.deepEqual(lines(await crictl('ps', '--pod', pod, '--state', 'running', '-q')), [ctr]);
    assert.deepEqual(lines(await crictl('ps', '--label', 'app=ticker', '-q')), [ctr]);
    assert.deepEqual(lines(await crictl('ps', '--label', 'app=nope', '-q')), []);

    const inspected = await crictlJson<{ status: { state: string; logPath: string; metadata: { name: string } }; info: { pid: number; runtimeSpec: { process: { args: string[] } } } }>('inspect', ctr);
    assert.equal(inspected.status.state, 'CONTAINER_RUNNING');
    assert.equal(inspected.status.metadata.name, 'ticker');
    assert.equal(inspected.status.logPath, ctrLog());
    assert.equal(inspected.info.pid, ctrPid);
    assert.deepEqual(inspected.info.runtimeSpec.process.args, ['/bin/sh', '-c', script]);
  });

  test('logs: the CRI log file, stdout and stderr apart, --tail', async () => {
    await eventually('five ticks in the log file', () => ticks(logContent(ctrLog(), 'stdout')).length >= 5);
    const out = await crictl('logs', ctr);
    const printed = ticks(lines(out));
    assert.ok(printed.length >= 5, `crictl logs printed ${printed.length} ticks`);
    assert.deepEqual(printed, printed.map((_, i) => i), 'every tick, in order, from the first');
    assert.deepEqual(logContent(ctrLog(), 'stdout').slice(0, printed.length), lines(out), 'what the file holds');
    assert.equal(out.stderr.trim(), 'started', 'the stderr line goes to crictl\'s stderr');
    const tail = ticks(lines(await crictl('logs', '--tail', '2', ctr)));
    assert.equal(tail.length, 2);
    assert.equal(tail[1], (tail[0] ?? -2) + 1);
    assert.ok((tail[0] ?? -1) >= printed.length - 2, 'the last lines, not the first');
  });

  test('exec -s: ExecSync runs in the container, in the pod\'s UTS namespace, with its exit code', async () => {
    const r = await crictl('exec', '-s', ctr, '/bin/sh', '-c', 'hostname; touch /tmp/made-by-exec');
    assert.equal(r.stdout.trim(), 'walk');
    assert.ok(existsSync(`/proc/${ctrPid}/root/tmp/made-by-exec`), 'the file is in the container\'s root');
    // crictl 1.26 turns a non-zero exit into its own exit 1 with the code and stderr in the message.
    const failed = await crictlFailing('exec', '-s', ctr, '/bin/sh', '-c', 'echo oops >&2; exit 3');
    assert.equal(failed.exitCode, 1);
    assert.match(failed.stderr, /exited with 3: oops/);
  });

  test('update: a memory limit and CPU shares reach the cgroup and show in inspect', async () => {
    const limit = 64 * 1024 * 1024;
    const memFile = (): string => cgroupRead(ctrPid, 'memory', 'memory.limit_in_bytes', 'memory.max');
    const cpuFile = (): string => cgroupRead(ctrPid, 'cpu', 'cpu.shares', 'cpu.weight');
    assert.notEqual(memFile(), String(limit), 'not limited before');
    assert.equal((await crictl('update', '--memory', String(limit), '--cpu-share', '512', ctr)).stdout.trim(), ctr);
    const linux = (await crictlJson<{ status: { resources: { linux: { memoryLimitInBytes: string; cpuShares: string } | null } } }>('inspect', ctr)).status.resources.linux;
    assert.equal(linux?.memoryLimitInBytes, String(limit));
    assert.equal(linux?.cpuShares, '512');
    assert.equal(memFile(), String(limit));
    // On v2 runc maps shares to a weight: 1 + (512 - 2) * 9999 / 262142 = 20.
    assert.equal(cpuFile(), cgroupV2(ctrPid) ? '20' : '512');
    assert.equal((await containerStatus(ctr)).state, 'CONTAINER_RUNNING', 'still running');
  });

  test('stats and statsp: the container\'s and the pod\'s usage, read from their cgroups', async () => {
    const before = cpuUsageNs(ctrPid);
    const all = (await crictlJson<{ stats: Stats[] }>('stats')).stats;
    const one = (await crictlJson<{ stats: Stats[] }>('stats', '--id', ctr)).stats;
    const afterwards = cpuUsageNs(ctrPid);
    assert.ok(all.some((s) => s.attributes.id === ctr));
    assert.deepEqual(one.map((s) => s.attributes.id), [ctr]);
    const s = one[0];
    assert.equal(s?.attributes.metadata.name, 'ticker');
    const cpu = BigInt(s?.cpu.usageCoreNanoSeconds.value ?? '-1');
    assert.ok(cpu >= before && cpu <= afterwards, `CPU ${cpu} ns between the cgroup's ${before} and ${afterwards}`);
    assert.ok(Number(s?.memory.workingSetBytes.value) > 0);
    assert.equal(s?.writableLayer.fsId.mountpoint, join(paths.root, 'containers'));

    const pods = (await crictlJson<{ stats: { attributes: { id: string }; linux: { cpu: { usageCoreNanoSeconds: Usage }; containers: Stats[] } }[] }>('statsp', '--id', pod)).stats;
    assert.deepEqual(pods.map((p) => p.attributes.id), [pod]);
    assert.deepEqual(pods[0]?.linux.containers.map((c) => c.attributes.id), lines(await crictl('ps', '--pod', pod, '-q')));
    assert.ok(BigInt(pods[0]?.linux.cpu.usageCoreNanoSeconds.value ?? '-1') >= before, 'the pod counts at least its container');
  });

  test('logs -f follows lines as they are written; stop ends it, through the TERM trap', async () => {
    const seen = Math.max(...ticks(logContent(ctrLog(), 'stdout')));
    const follow = spawn(CRICTL, crictlArgs(['logs', '-f', ctr]), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follow.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let exit: number | null = null;
    const exited = untilEvent<number>('crictl logs -f to exit', 30_000, (done) => {
      follow.once('exit', (code) => done((exit = code ?? -1)));
      return () => undefined;
    });
    try {
      await untilEvent<void>(`tick ${seen + 5} through crictl logs -f`, 15_000, (done) => {
        const onData = (): void => {
          if (out.includes(`\ntick ${seen + 5}\n`)) done();
        };
        follow.stdout.on('data', onData);
        return () => follow.stdout.off('data', onData);
      });
      assert.equal(exit, null, 'still following');
      assert.equal((await crictl('stop', '--timeout', '10', ctr)).stdout.trim(), ctr);
      assert.equal(await exited, 0, 'crictl saw the container stop and ended');
    } finally {
      follow.kill(); // a no-op once it has ended by itself
      await exited.catch(() => undefined);
    }
    const printed = out.split('\n').filter(Boolean);
    assert.equal(printed.at(-1), 'bye', 'the trap\'s last words came through');
    assert.deepEqual(printed, logContent(ctrLog(), 'stdout'), 'followed the whole file, nothing lost or doubled');

    const st = await crictlJson<{ status: { state: string; exitCode: number; reason: string } }>('inspect', ctr);
    assert.deepEqual([st.status.state, st.status.exitCode, st.status.reason], ['CONTAINER_EXITED', 7, 'Error']);
    assert.ok(!processAlive(ctrPid), 'its process is gone');
  });

  test('rm: the container, its runc state and its rootfs mount are gone', async () => {
    assert.equal((await crictl('rm', ctr)).stdout.trim(), ctr);
    await rejects(containerStatus(ctr), grpcStatus.NOT_FOUND, /not found/);
    assert.ok(!lines(await crictl('ps', '-a', '-q')).includes(ctr));
    assert.ok(!runcContainers(paths.run).includes(ctr));
    assert.ok(!isMountPoint(join(paths.root, 'containers', ctr, 'rootfs', 'merged')));
  });

  test('stopp and rmp: the pause process stops, then the pod and its netns go', async () => {
    assert.equal((await crictl('stopp', pod)).stdout.trim(), `Stopped sandbox ${pod}`);
    assert.equal(await podState(pod), 'SANDBOX_NOTREADY');
    assert.deepEqual(lines(await crictl('pods', '--state', 'notready', '-q')), [pod]);
    await eventually('the pause process to be gone', () => !processAlive(pausePid));
    assert.equal((await crictl('rmp', pod)).stdout.trim(), `Removed sandbox ${pod}`);
    await rejects(podState(pod), grpcStatus.NOT_FOUND, /not found/);
    assert.ok(!lines(await crictl('pods', '-q')).includes(pod));
    assert.ok(!isMountPoint(netnsPath), `${netnsPath} is unmounted`);
  });

  test('run: a pod and a container from JSON files, the image pulled on the way', async () => {
    assert.equal(await imageStatus(RUN_REF), null, 'not pulled yet');
    const script = 'cat /marker; hostname; exec sleep 1000';
    const id = (await crictl('run', containerFile('runner', script, RUN_REF), podFile('runpod'))).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal((await imageStatus(RUN_REF))?.id, runImage.configDigest, 'crictl run pulled it');

    const c = (await crictlJson<{ containers: (Item & { podSandboxId: string })[] }>('ps', '--id', id)).containers;
    assert.deepEqual(c.map((x) => [x.id, x.state, x.metadata.name]), [[id, 'CONTAINER_RUNNING', 'runner']]);
    const p = (await crictlJson<{ items: Item[] }>('pods', '--id', c[0]?.podSandboxId ?? '-')).items;
    assert.deepEqual(p.map((x) => [x.metadata.name, x.state]), [['runpod', 'SANDBOX_READY']]);
    assert.ok(processAlive((await containerStatus(id)).pid));
    const log = join(podLogDir('runpod'), 'runner.log');
    await eventually('the runner\'s output', () => logContent(log, 'stdout').length >= 2);
    assert.deepEqual(lines(await crictl('logs', id)), ['from the run image', 'runpod']);
    const podId = c[0]?.podSandboxId ?? '-';
    assert.deepEqual(lines(await crictl('rmp', '--force', podId)), [`Stopped sandbox ${podId}`, `Removed sandbox ${podId}`]);
    await rejects(containerStatus(id), grpcStatus.NOT_FOUND, /not found/);
  });

  test('rmi: the image is untagged and removed, and its blobs freed', async () => {
    assert.equal((await crictl('rmi', REF)).stdout.trim(), `Deleted: ${REF}`);
    assert.equal(await imageStatus(REF), null);
    assert.equal(await imageStatus(image.configDigest), null, 'gone by id too, not just untagged');
    assert.ok(!lines(await crictl('images', '-q')).includes(image.configDigest));
    assert.ok(!existsSync(blobPath(image.configDigest)), 'its config blob is freed');
    assert.ok(existsSync(blobPath(runImage.configDigest)), 'the other image stays');
  });
});
