/**
 * npm run bench (issue 14, item 1; not part of the tests): podchart's CRI operations, timed from a
 * persistent gRPC client (median and p90) and from the daemon's own latency histogram (mean per
 * call: its buckets are too coarse for a median under 5 ms), plus memory with 100 pods. It writes
 * the table as JSON and Markdown under BENCH_OUT (./bench-results).
 *
 * Built so far: podchart alone, on a daemon of its own (temp dirs, the bridge CNI, the busybox test
 * image from a loopback registry). Not built yet, and said so in the output: `--vs containerd`
 * (installing and configuring containerd's CRI plugin with the same CNI and images), the restore
 * of 200 pods after kill -9, and the raw runc floor. BENCH_RUNS (20) sets the runs per operation.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, podConfig, tempPaths } from '../test/daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from '../test/busybox-daemon.js';
import { buildImage, pushImage } from '../test/image-builder.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 20);
const OUT = process.env['BENCH_OUT'] ?? 'bench-results';
const PODS = 100;
/** A container that ends on SIGTERM (a plain sleep as pid 1 ignores it, and every stop would take its full timeout). */
const SLEEPER = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];

const client = new Map<string, number[]>();
function record(op: string, ms: number): void {
  let list = client.get(op);
  if (!list) client.set(op, (list = []));
  list.push(ms);
}
async function timed<T>(op: string, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await call();
  record(op, performance.now() - started);
  return result;
}
const quantile = (values: readonly number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

/** Proportional set size (kB) of a process, from /proc/<pid>/smaps_rollup; 0 once it is gone. */
function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

/**
 * What the runtime itself adds on the host for the daemon's pods, not the workloads: every conmon,
 * and each pod's pause process (the child of the pod's conmon). Containers' own processes are left out.
 */
function runtimeProcesses(base: string): number[] {
  const parents = new Map<number, number>();
  const conmons: number[] = [];
  const podConmons = new Set<number>();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parents.set(p, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.startsWith('/usr/bin/conmon') || !cmd.includes(base)) continue;
      conmons.push(p);
      if (cmd.includes('k8s_POD_')) podConmons.add(p);
    } catch {
      // gone meanwhile
    }
  }
  const pauses = [...parents].filter(([, parent]) => podConmons.has(parent)).map(([p]) => p);
  return [...conmons, ...pauses];
}

/** The daemon's histogram, per method: seconds summed and calls counted (successful calls). */
type Totals = Map<string, { sum: number; count: number }>;
async function serverTotals(daemon: Daemon): Promise<Totals> {
  const text = await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/metrics`)).text();
  const totals: Totals = new Map();
  for (const m of text.matchAll(/^podchart_cri_call_duration_seconds_(sum|count)\{code="OK",method="(\w+)"\} (\S+)$/gm)) {
    const t = totals.get(m[2] ?? '') ?? { sum: 0, count: 0 };
    t[m[1] === 'sum' ? 'sum' : 'count'] = Number(m[3]);
    totals.set(m[2] ?? '', t);
  }
  return totals;
}

/** Mean server-side ms per method over the calls between two readings (a phase of the bench). */
function meansBetween(before: Totals, after: Totals, into: Map<string, number>): void {
  for (const [method, t] of after) {
    const b = before.get(method) ?? { sum: 0, count: 0 };
    if (t.count > b.count) into.set(method, ((t.sum - b.sum) / (t.count - b.count)) * 1000);
  }
}

async function lifecycle(daemon: Daemon, name: string, op = (what: string): string => what): Promise<void> {
  const sandboxConfig = podConfig(name);
  const { podSandboxId } = await timed(op('RunPodSandbox'), () => daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }, 120_000));
  const config = { metadata: { name: 'c', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: SLEEPER };
  const { containerId } = await timed(op('CreateContainer'), () => daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }, 120_000));
  await timed(op('StartContainer'), () => daemon.cri.call('StartContainer', { containerId }, 120_000));
  await timed(op('ExecSync echo hi'), () => daemon.cri.call('ExecSync', { containerId, cmd: ['echo', 'hi'], timeout: 30 }, 120_000));
  await timed(op('StopContainer'), () => daemon.cri.call('StopContainer', { containerId, timeout: 2 }, 120_000));
  await timed(op('RemoveContainer'), () => daemon.cri.call('RemoveContainer', { containerId }, 120_000));
  await timed(op('StopPodSandbox'), () => daemon.cri.call('StopPodSandbox', { podSandboxId }, 120_000));
  await timed(op('RemovePodSandbox'), () => daemon.cri.call('RemovePodSandbox', { podSandboxId }, 120_000));
}

async function main(): Promise<void> {
  const paths = tempPaths('pc-bench-');
  const daemon = new Daemon(paths);
  const registry = await startWithBusybox(daemon);
  const extra: Record<string, number | string> = {};
  try {
    const five = await buildImage({ layers: Array.from({ length: 5 }, (_, i) => ({ compression: 'gzip' as const, entries: [{ path: `/layer${i}`, type: 'file' as const, content: Buffer.alloc(256 * 1024, i) }] })) });
    await pushImage(registry, 'library/five', '1', five);

    const server = new Map<string, number>();
    await lifecycle(daemon, 'warm-up', () => 'warm-up'); // first-call costs (JIT, caches) out of the numbers
    let before = await serverTotals(daemon);
    for (let i = 0; i < RUNS; i++) await lifecycle(daemon, `bench-${i}`);
    for (let i = 0; i < Math.max(3, RUNS / 4); i++) {
      await timed('PullImage (5 layers)', () => daemon.cri.callImage('PullImage', { image: { image: 'five:1' } }, 120_000));
      await daemon.cri.callImage('RemoveImage', { image: { image: 'five:1' } });
    }
    meansBetween(before, await serverTotals(daemon), server);

    const started = performance.now();
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const sandboxConfig = podConfig(`par-${i}`);
      const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }, 300_000);
      const config = { metadata: { name: 'c', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: SLEEPER };
      const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }, 300_000);
      await daemon.cri.call('StartContainer', { containerId }, 300_000);
    }));
    extra['20 pods in parallel, run+create+start (wall ms)'] = Math.round(performance.now() - started);
    for (const p of (await daemon.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {})).items) {
      await daemon.cri.call('StopPodSandbox', { podSandboxId: p.id }, 120_000);
      await daemon.cri.call('RemovePodSandbox', { podSandboxId: p.id }, 120_000);
    }

    extra['daemon RSS idle (MB)'] = Math.round(rssKb(daemon.pid()) / 1024);
    const pods: { podSandboxId: string; containers: string[] }[] = [];
    for (let i = 0; i < PODS; i++) {
      const sandboxConfig = podConfig(`many-${i}`);
      const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig }, 120_000);
      const containers: string[] = [];
      for (const name of ['a', 'b']) {
        const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: SLEEPER };
        const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig }, 120_000);
        await daemon.cri.call('StartContainer', { containerId }, 120_000);
        containers.push(containerId);
      }
      pods.push({ podSandboxId, containers });
    }
    before = await serverTotals(daemon);
    for (let i = 0; i < RUNS; i++) {
      const pod = pods[i % pods.length];
      if (!pod) break;
      await timed(`ListPodSandbox (${PODS} pods)`, () => daemon.cri.call('ListPodSandbox', {}));
      await timed(`ListContainers (${PODS * 2})`, () => daemon.cri.call('ListContainers', {}));
      await timed(`PodSandboxStatus (${PODS} pods)`, () => daemon.cri.call('PodSandboxStatus', { podSandboxId: pod.podSandboxId }));
      await timed(`ContainerStatus (${PODS * 2})`, () => daemon.cri.call('ContainerStatus', { containerId: pod.containers[0] }));
      await timed(`ListContainerStats (${PODS * 2})`, () => daemon.cri.call('ListContainerStats', {}));
    }
    meansBetween(before, await serverTotals(daemon), server);
    const added = runtimeProcesses(paths.base);
    extra[`daemon RSS with ${PODS} pods (MB)`] = Math.round(rssKb(daemon.pid()) / 1024);
    extra[`daemon PSS with ${PODS} pods (MB)`] = Math.round(pssKb(daemon.pid()) / 1024);
    extra['runtime memory per pod, PSS of its conmons and pause (kB)'] = Math.round(added.reduce((sum, p) => sum + pssKb(p), 0) / PODS);
    for (const pod of pods) {
      await daemon.cri.call('StopPodSandbox', { podSandboxId: pod.podSandboxId }, 120_000);
      await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod.podSandboxId }, 120_000);
    }
    report(server, extra);
  } finally {
    await daemon.dispose();
    await registry.stop();
  }
}

const SERVER_METHOD: Record<string, string> = { 'ExecSync echo hi': 'ExecSync', 'PullImage (5 layers)': 'PullImage' };

function report(server: Map<string, number>, extra: Record<string, number | string>): void {
  const rows = [...client.entries()].filter(([op]) => op !== 'warm-up').map(([op, ms]) => {
    const method = SERVER_METHOD[op] ?? op.split(' ')[0] ?? op;
    return { operation: op, runs: ms.length, medianMs: +quantile(ms, 0.5).toFixed(2), p90Ms: +quantile(ms, 0.9).toFixed(2), serverMeanMs: +(server.get(method) ?? NaN).toFixed(2) };
  });
  const notBuilt = ['--vs containerd: containerd is not installed or configured by this bench yet, so there are no ratios and no targets are checked',
    'restore after kill -9 with 200 pods × 2 containers', 'the raw runc floor on the same bundle', 'a profile of the slowest operations'];
  mkdirSync(OUT, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(OUT, `bench-${stamp}.json`), JSON.stringify({ runs: RUNS, operations: rows, extra, notBuilt }, null, 2));
  const md = [
    `# podchart bench (${RUNS} runs per operation)`, '',
    '| operation | runs | median ms | p90 ms | server mean ms |', '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.operation} | ${r.runs} | ${r.medianMs} | ${r.p90Ms} | ${Number.isNaN(r.serverMeanMs) ? '' : r.serverMeanMs} |`), '',
    ...Object.entries(extra).map(([k, v]) => `- ${k}: ${v}`), '',
    'Not measured yet:', ...notBuilt.map((n) => `- ${n}`), '',
  ].join('\n');
  writeFileSync(join(OUT, `bench-${stamp}.md`), md);
  console.log(md);
  console.log(`written: ${join(OUT, `bench-${stamp}.json`)} and .md`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
