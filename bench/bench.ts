/**
 * npm run bench [-- --vs containerd] (issue 14; not part of the tests): podchart's CRI operations,
 * and with `--vs containerd` the same ones against Debian's containerd, alternating runs, on the
 * same images and CNI config (bench/containerd.ts). Each operation is timed from a persistent
 * gRPC client (median, p90) and from the runtime's own latency histogram (mean per call: podchart's
 * buckets are too coarse for a median under 5 ms); then 20 pods in parallel, List/Status with 100
 * pods × 2 containers, memory, the restore of BENCH_RESTORE_PODS (200) pods × 2 containers after
 * kill -9, and the raw runc floor. With containerd it prints each ratio and whether the targets
 * of issue 14 are met, in plain words. JSON and Markdown go to BENCH_OUT (./bench-results).
 * BENCH_RUNS (20) sets the runs per operation; BENCH_PHASES (lifecycle,parallel,pods,restore,floor)
 * which parts run.
 */
import { join, resolve } from 'node:path';
import { Daemon, podConfig, tempPaths } from '../test/daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from '../test/busybox-daemon.js';
import { buildImage, pushImage } from '../test/image-builder.js';
import type { RegistryFixture } from '../test/registry-fixture.js';
import { Containerd, ensureContainerd } from './containerd.js';
import { findKit, KIT_REGISTRY, startKitRegistry } from './kit.js';
import { CriClient } from '../test/cri-client.js';
import { containerdTarget, podchartTarget, pssKb, rssKb, settledKb, type Target, type Totals } from './targets.js';
import { runcFloor } from './runc-floor.js';
import { bucketQuantile, report, type Results } from './bench-report.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 20);
const RESTORE_PODS = Number(process.env['BENCH_RESTORE_PODS'] ?? 200);
const PODS = 100;
/** Rounds of the List/Status calls per run in the 100-pod phase. */
const POLLS_PER_RUN = 10;
/** BENCH_PHASES: which parts run (lifecycle, parallel, pods, restore, floor); all by default. */
const PHASES = new Set((process.env['BENCH_PHASES'] ?? 'lifecycle,parallel,pods,restore,floor').split(','));
const VS_CONTAINERD = process.argv.includes('--vs') && process.argv[process.argv.indexOf('--vs') + 1] === 'containerd';
const REPO = resolve(import.meta.dirname, '..', '..');
/** A container that ends on SIGTERM (a plain sleep as pid 1 ignores it, and every stop would take its full timeout). */
const SLEEPER = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
/** The critest kit: its registry serves the pause image containerd runs. */
const KIT = findKit(REPO);

const results: Results = { runs: RUNS, podchartArgs: process.env['BENCH_PODCHART_ARGS'] ?? '', client: new Map(), server: new Map(), serverWithReply: new Map(), serverMedianWithReply: new Map(), steps: new Map(), extra: new Map(), floor: {} };

function record(target: string, op: string, ms: number): void {
  const key = `${target}\t${op}`;
  let list = results.client.get(key);
  if (!list) results.client.set(key, (list = []));
  list.push(ms);
}
function extra(target: Target, what: string, value: number): void {
  results.extra.set(`${target.name}\t${what}`, value);
}
async function timed<T>(target: Target, op: string, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await call();
  if (op !== 'warm-up') record(target.name, op, performance.now() - started);
  return result;
}

/** Mean server-side ms per method over the calls between two readings (a phase of the bench). */
/** A runtime's server-side totals: the handler alone, and (podchart's) with the reply written. */
interface ServerReadings {
  handler: Totals;
  reply: Totals | null;
}

async function readServer(t: Target): Promise<ServerReadings> {
  return { handler: await t.serverTotals(), reply: (await t.replyTotals?.()) ?? null };
}

function meansInto(into: Map<string, number>, name: string, before: Totals, after: Totals): void {
  for (const [method, t] of after) {
    const b = before.get(method) ?? { sum: 0, count: 0 };
    if (t.count > b.count) into.set(`${name}\t${method}`, ((t.sum - b.sum) / (t.count - b.count)) * 1000);
  }
}

/** Each method's median (ms) from the calls between two readings of its histogram's buckets. */
function mediansInto(into: Map<string, number>, name: string, before: Totals, after: Totals): void {
  for (const [method, t] of after) {
    const b = before.get(method);
    const calls = t.count - (b?.count ?? 0);
    if (!t.buckets || calls <= 0) continue;
    const between = new Map([...t.buckets].map(([le, n]) => [le, n - (b?.buckets?.get(le) ?? 0)]));
    into.set(`${name}\t${method}`, bucketQuantile(between, calls, 0.5) * 1000);
  }
}

function meansBetween(target: Target, before: ServerReadings, after: ServerReadings): void {
  meansInto(results.server, target.name, before.handler, after.handler);
  if (!after.reply) return;
  meansInto(results.serverWithReply, target.name, before.reply ?? (new Map() as Totals), after.reply);
  mediansInto(results.serverMedianWithReply, target.name, before.reply ?? (new Map() as Totals), after.reply);
}

/** Each method's steps per call between two readings (the calls counted by the CRI histogram). */
function stepsBetween(callsBefore: Totals, callsAfter: Totals, before: Totals, after: Totals): void {
  for (const [key, t] of after) {
    const [method = '', step = ''] = key.split('\t');
    const calls = (callsAfter.get(method)?.count ?? 0) - (callsBefore.get(method)?.count ?? 0);
    const b = before.get(key) ?? { sum: 0, count: 0 };
    if (calls <= 0 || t.count <= b.count) continue;
    const list = results.steps.get(method) ?? [];
    list.push({ step, perCall: (t.count - b.count) / calls, ms: ((t.sum - b.sum) * 1000) / calls });
    results.steps.set(method, list);
  }
}

async function startPod(t: Target, name: string, containers: readonly string[], timeoutMs = 120_000): Promise<{ podSandboxId: string; containers: string[] }> {
  const sandboxConfig = podConfig(name);
  const { podSandboxId } = await t.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }, timeoutMs);
  const ids: string[] = [];
  for (const c of containers) {
    const config = { metadata: { name: c, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: SLEEPER };
    const { containerId } = await t.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }, timeoutMs);
    await t.cri.call('StartContainer', { containerId }, timeoutMs);
    ids.push(containerId);
  }
  return { podSandboxId, containers: ids };
}

async function removeAllPods(t: Target): Promise<void> {
  for (const p of (await t.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {})).items) {
    await t.cri.call('StopPodSandbox', { podSandboxId: p.id }, 120_000);
    await t.cri.call('RemovePodSandbox', { podSandboxId: p.id }, 120_000);
  }
}

async function lifecycle(t: Target, name: string, op = (what: string): string => what): Promise<void> {
  const sandboxConfig = podConfig(name);
  const { podSandboxId } = await timed(t, op('RunPodSandbox'), () => t.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }, 120_000));
  const config = { metadata: { name: 'c', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: SLEEPER };
  const { containerId } = await timed(t, op('CreateContainer'), () => t.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }, 120_000));
  await timed(t, op('StartContainer'), () => t.cri.call('StartContainer', { containerId }, 120_000));
  await timed(t, op('ExecSync'), () => t.cri.call('ExecSync', { containerId, cmd: ['echo', 'hi'], timeout: 30 }, 120_000));
  await timed(t, op('StopContainer'), () => t.cri.call('StopContainer', { containerId, timeout: 2 }, 120_000));
  await timed(t, op('RemoveContainer'), () => t.cri.call('RemoveContainer', { containerId }, 120_000));
  await timed(t, op('StopPodSandbox'), () => t.cri.call('StopPodSandbox', { podSandboxId }, 120_000));
  await timed(t, op('RemovePodSandbox'), () => t.cri.call('RemovePodSandbox', { podSandboxId }, 120_000));
}

/** Runs `fn` once per target per round, alternating which goes first. */
async function alternating(targets: readonly Target[], rounds: number, fn: (t: Target, i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) await fn(t, i);
  }
}

/** Rounds of the 20 parallel pods, alternating runtimes: one wall time alone varied by a third between runs. */
const PARALLEL_ROUNDS = Math.max(3, Math.round(RUNS / 3));
const PARALLEL = '20 pods in parallel, run+create+start (wall ms)';

async function parallelPods(t: Target, round: number): Promise<void> {
  const started = performance.now();
  await Promise.all(Array.from({ length: 20 }, (_, i) => startPod(t, `par-${round}-${i}`, ['c'], 300_000)));
  record(t.name, PARALLEL, performance.now() - started);
  await removeAllPods(t);
}

async function hundredPods(t: Target): Promise<void> {
  extra(t, 'daemon RSS idle (MB)', Math.round((await settledKb(() => rssKb(t.pid()))) / 1024));
  const pods: { podSandboxId: string; containers: string[] }[] = [];
  for (let i = 0; i < PODS; i++) pods.push(await startPod(t, `many-${i}`, ['a', 'b']));
  const before = await readServer(t);
  // The polled calls take well under a millisecond: POLLS_PER_RUN rounds of them per run, so that one
  // garbage collection does not decide a mean. ListContainerStats (half a second on containerd)
  // runs once per run, among them, as kubelet's stats poll runs among its status polls.
  for (let i = 0; i < RUNS * POLLS_PER_RUN; i++) {
    const pod = pods[i % pods.length];
    if (!pod) break;
    await timed(t, 'ListPodSandbox', () => t.cri.call('ListPodSandbox', {}));
    await timed(t, 'ListContainers', () => t.cri.call('ListContainers', {}));
    await timed(t, 'PodSandboxStatus', () => t.cri.call('PodSandboxStatus', { podSandboxId: pod.podSandboxId }));
    await timed(t, 'ContainerStatus', () => t.cri.call('ContainerStatus', { containerId: pod.containers[0] }));
    if (i % POLLS_PER_RUN === 0) await timed(t, 'ListContainerStats', () => t.cri.call('ListContainerStats', {}));
  }
  meansBetween(t, before, await readServer(t));
  extra(t, `daemon RSS with ${PODS} pods (MB)`, Math.round((await settledKb(() => rssKb(t.pid()))) / 1024));
  extra(t, `daemon PSS with ${PODS} pods (MB)`, Math.round((await settledKb(() => pssKb(t.pid()))) / 1024));
  const added = t.runtimeProcesses();
  extra(t, 'runtime memory per pod, PSS of its shims/conmons and pause (kB)', Math.round(added.reduce((sum, p) => sum + pssKb(p), 0) / PODS));
  await removeAllPods(t);
}

/** kill -9 with RESTORE_PODS pods × 2 containers running: time to a serving socket, and until every one is back. */
async function restore(t: Target): Promise<void> {
  for (let i = 0; i < RESTORE_PODS; i++) await startPod(t, `restore-${i}`, ['a', 'b']);
  await t.crash();
  // A client of its own polls from the restart on: the first Version answered is "serving", the
  // first List that shows every pod READY and every container RUNNING is "every one back".
  const probe = new CriClient(t.socket);
  const started = performance.now();
  let serving = NaN;
  let back = NaN;
  const restarted = t.restart();
  const deadline = Date.now() + 300_000;
  try {
    while (Number.isNaN(back)) {
      if (Date.now() > deadline) throw new Error(`${t.name}: not every pod and container back after 300 s`);
      try {
        if (Number.isNaN(serving)) {
          // A new channel per try: a grpc-js channel that failed to connect waits its reconnect
          // backoff (1 s) before the next try, which would be timed as the runtime's.
          const once = new CriClient(t.socket);
          try {
            await once.call('Version', {}, 1_000);
          } finally {
            once.close();
          }
          serving = performance.now() - started;
        }
        const pods = (await probe.call<{ items: { state: string }[] }>('ListPodSandbox', {}, 5_000)).items.filter((p) => p.state === 'SANDBOX_READY');
        const running = (await probe.call<{ containers: { state: string }[] }>('ListContainers', {}, 5_000)).containers.filter((c) => c.state === 'CONTAINER_RUNNING');
        if (pods.length === RESTORE_PODS && running.length === RESTORE_PODS * 2) back = performance.now() - started;
      } catch {
        // not serving yet, or still restoring (UNAVAILABLE)
      }
      if (Number.isNaN(back)) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    probe.close();
  }
  await restarted;
  extra(t, `restore of ${RESTORE_PODS} pods: socket serving (ms)`, Math.round(serving));
  extra(t, `restore of ${RESTORE_PODS} pods: every pod and container back (ms)`, Math.round(back));
  // Where podchart's start went: node, images, deps, socket, modes (the state-modes walk), restore, serve.
  for (const [lap, ms] of Object.entries(t.startupLaps?.() ?? {})) extra(t, `restore of ${RESTORE_PODS} pods: start lap "${lap}" (ms)`, ms);
  await removeAllPods(t);
}

async function main(): Promise<void> {
  const paths = tempPaths('pc-bench-');
  // info, as a node runs it: debug logging costs the daemon CPU on every call.
  // BENCH_PODCHART_ARGS: extra podchartd flags, to bench a variant (e.g. --drop-infra-container).
  const daemon = new Daemon(paths, ['--log-level', 'info', ...(process.env['BENCH_PODCHART_ARGS'] ?? '').split(' ').filter(Boolean)]);
  const targets: Target[] = [podchartTarget(daemon, { PODCHART_CONFIG: join(paths.base, 'config.json') })];
  let containerd: Containerd | null = null;
  let registry: RegistryFixture | null = null;
  // Everything started is stopped on every path: a bench that fails at its first pull must not
  // leave its daemon, and the pods of a later phase, running.
  try {
    registry = await startWithBusybox(daemon);
    const five = await buildImage({ layers: Array.from({ length: 5 }, (_, i) => ({ compression: 'gzip' as const, entries: [{ path: `/layer${i}`, type: 'file' as const, content: Buffer.alloc(256 * 1024, i) }] })) });
    await pushImage(registry, 'library/five', '1', five);
    if (VS_CONTAINERD) {
      if (!KIT) throw new Error('--vs containerd needs the critest kit (../shared/critest) for its pause image');
      ensureContainerd(REPO);
      startKitRegistry(REPO, KIT);
      containerd = new Containerd({
        base: join(paths.base, 'containerd'),
        cniConfDir: daemon.network?.confDir ?? '',
        cniBinDirs: ['/usr/lib/cni', '/opt/cni/bin'],
        mirrors: { 'docker.io': registry.url, 'registry.k8s.io': KIT_REGISTRY },
        sandboxImage: 'registry.k8s.io/pause:3.9',
      });
      await containerd.start();
      await containerd.cri.callImage('PullImage', { image: { image: BUSYBOX_IMAGE } }, 120_000);
      targets.push(containerdTarget(containerd));
    }
    for (const t of targets) await lifecycle(t, `warm-up-${t.name}`, () => 'warm-up'); // JIT and caches out of the numbers
    if (PHASES.has('lifecycle')) {
      const before = new Map(await Promise.all(targets.map(async (t) => [t.name, await readServer(t)] as const)));
      const stepsBefore: Totals = (await targets[0]?.stepTotals?.()) ?? new Map<string, { sum: number; count: number }>();
      await alternating(targets, RUNS, (t, i) => lifecycle(t, `bench-${t.name}-${i}`));
      await alternating(targets, Math.max(3, RUNS / 4), async (t) => {
        await timed(t, 'PullImage (5 layers)', () => t.cri.callImage('PullImage', { image: { image: 'five:1' } }, 120_000));
        await t.cri.callImage('RemoveImage', { image: { image: 'five:1' } });
      });
      for (const t of targets) meansBetween(t, before.get(t.name) ?? { handler: new Map() as Totals, reply: null }, await readServer(t));
      const podchart = targets[0];
      if (podchart?.stepTotals) stepsBetween(before.get(podchart.name)?.handler ?? (new Map() as Totals), await podchart.serverTotals(), stepsBefore, await podchart.stepTotals());
    }
    if (PHASES.has('parallel')) await alternating(targets, PARALLEL_ROUNDS, parallelPods);
    if (PHASES.has('pods')) for (const t of targets) await hundredPods(t);
    if (PHASES.has('restore') && RESTORE_PODS > 0) for (const t of targets) await restore(t);
    if (PHASES.has('floor')) results.floor = runcFloor(join(paths.base, 'runc-floor'), RUNS);
    report(results, targets.map((t) => t.name));
  } finally {
    if (containerd) {
      await removeAllPods(containerdTarget(containerd)).catch(() => undefined);
      await containerd.stop();
    }
    await daemon.dispose();
    await registry?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
