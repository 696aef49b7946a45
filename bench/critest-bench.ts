/**
 * npm run bench:critest (issue 14, item 5): stock critest's own benchmark mode (`critest
 * -benchmark`, cri-tools v1.26.1 from the kit, the Go client code of kubelet 1.26) against podchart
 * and Debian's containerd, back to back on this machine, rounds alternating. Both use the same
 * CNI config and the kit's loopback registry (registry.k8s.io and gcr.io mirrored to it), as in
 * `npm run bench -- --vs containerd`.
 *
 * critest writes each benchmark's raw durations as JSON into its output dir; this reads them and
 * prints, per operation, each runtime's median and p90 and the ratio podchart/containerd, as
 * Markdown and JSON into BENCH_OUT. critest's pods set no namespace options, so their pid
 * namespace mode is POD: podchart gives them a pause process, as containerd does.
 *
 * Env: CRITEST_BENCH_SAMPLES (pod and container lifecycles per round, default 20),
 * CRITEST_BENCH_ROUNDS (default 2), BENCH_PODCHART_ARGS (extra podchartd flags), BENCH_OUT.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Daemon, tempPaths } from '../test/daemon.js';
import { Containerd, ensureContainerd } from './containerd.js';
import { findKit, KIT_REGISTRY, startKitRegistry } from './kit.js';
import { fmt, OUT, quantile } from './bench-report.js';

const SAMPLES = Number(process.env['CRITEST_BENCH_SAMPLES'] ?? 20);
const ROUNDS = Number(process.env['CRITEST_BENCH_ROUNDS'] ?? 2);
const REPO = resolve(import.meta.dirname, '..', '..');
const KIT_ROOT = findKit(REPO);
/** The image every benchmark runs and pulls: one the kit's registry serves. */
const IMAGE = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

/** critest's parameters: flat lowerCamelCase keys (nested ones are ignored, and it falls back to one sample). */
function paramsYaml(): string {
  return [
    `containersNumber: ${SAMPLES}`, 'containersNumberParallel: 1', 'containerBenchmarkTimeoutSeconds: 120',
    `podsNumber: ${SAMPLES}`, 'podsNumberParallel: 1', 'podBenchmarkTimeoutSeconds: 120',
    `imagesNumber: ${Math.max(3, Math.round(SAMPLES / 4))}`, 'imagesNumberParallel: 1', 'imageBenchmarkTimeoutSeconds: 120',
    `imagePullingBenchmarkImage: "${IMAGE}"`, 'podContainerStartBenchmarkTimeoutSeconds: 120',
    'imageListingBenchmarkImages:', `  - "${IMAGE}"`, '',
  ].join('\n');
}

/** Durations in ms per operation, from the JSON files critest wrote into `dir`. */
function readDurations(dir: string, into: Map<string, number[]>): void {
  const add = (op: string, ns: unknown): void => {
    if (typeof ns !== 'number') return;
    let list = into.get(op);
    if (!list) into.set(op, (list = []));
    list.push(ns / 1e6);
  };
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const data = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
    const bench = file.replace(/_benchmark_data\.json$|\.json$/, '');
    // A lifecycle set: operation names, and per sample one duration per operation.
    if (Array.isArray(data['operationsNames']) && Array.isArray(data['datapoints'])) {
      const names = data['operationsNames'] as string[];
      for (const point of data['datapoints'] as { operationsDurationsNs?: unknown[] }[]) {
        (point.operationsDurationsNs ?? []).forEach((ns, i) => add(`${bench}: ${names[i] ?? `op${i}`}`, ns));
      }
      continue;
    }
    // Otherwise: operation name → durations in ns.
    for (const [op, list] of Object.entries(data)) if (Array.isArray(list)) for (const ns of list) add(`${bench}: ${op}`, ns);
  }
}

/**
 * One critest -benchmark run. Asynchronous: a synchronous spawn would stop this process reading
 * the daemons' output pipes, and a daemon blocked on a full pipe would be timed.
 */
async function critest(kitRoot: string, socket: string, params: string, outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true }); // critest does not make it, and only logs that it could not write
  const endpoint = `unix://${socket}`;
  const args = ['-benchmark', '-runtime-endpoint', endpoint, '-image-endpoint', endpoint, '-benchmarking-params-file', params, '-benchmarking-output-dir', outDir];
  try {
    const r = await promisify(execFile)(join(kitRoot, 'cri-tools', 'critest'), args, { maxBuffer: 64 * 1024 * 1024, timeout: 30 * 60_000 });
    writeFileSync(join(outDir, 'critest.txt'), `${r.stdout}\n${r.stderr}`);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    const out = `${e.stdout ?? ''}\n${e.stderr ?? ''}`;
    writeFileSync(join(outDir, 'critest.txt'), out);
    throw new Error(`critest -benchmark against ${socket} failed (${String(e.code ?? err)}); its output is in ${join(outDir, 'critest.txt')}:\n${out.split('\n').slice(-30).join('\n')}`);
  }
}

async function main(): Promise<void> {
  if (!KIT_ROOT) throw new Error('bench:critest needs the critest kit (../shared/critest and ../shared/cri-tools)');
  startKitRegistry(REPO, KIT_ROOT);
  ensureContainerd(REPO);
  const paths = tempPaths('pc-critest-bench-');
  const config = join(paths.base, 'config.json');
  writeFileSync(config, JSON.stringify({ registries: { hosts: { 'registry.k8s.io': { mirrors: [KIT_REGISTRY] }, 'gcr.io': { mirrors: [KIT_REGISTRY] } } } }));
  const daemon = new Daemon(paths, ['--log-level', 'info', ...(process.env['BENCH_PODCHART_ARGS'] ?? '').split(' ').filter(Boolean)]);
  const containerd = new Containerd({
    base: join(paths.base, 'containerd'),
    cniConfDir: daemon.network?.confDir ?? '',
    cniBinDirs: ['/usr/lib/cni', '/opt/cni/bin'],
    mirrors: { 'registry.k8s.io': KIT_REGISTRY, 'gcr.io': KIT_REGISTRY },
    sandboxImage: 'registry.k8s.io/pause:3.9',
  });
  const params = join(paths.base, 'critest-params.yaml');
  writeFileSync(params, paramsYaml());
  const durations = { podchart: new Map<string, number[]>(), containerd: new Map<string, number[]>() };
  try {
    await daemon.start({ PODCHART_CONFIG: config });
    await containerd.start();
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating which goes first, so neither always runs on a machine the other just warmed.
      const order = round % 2 === 0 ? (['podchart', 'containerd'] as const) : (['containerd', 'podchart'] as const);
      for (const name of order) {
        const socket = name === 'podchart' ? paths.socket : containerd.socket;
        const outDir = join(paths.base, 'critest-out', `${name}-${round}`);
        console.log(`[bench:critest] round ${round + 1}/${ROUNDS}: critest -benchmark against ${name}`);
        await critest(KIT_ROOT, socket, params, outDir);
        readDurations(outDir, durations[name]);
      }
    }
  } finally {
    await containerd.stop().catch(() => undefined);
    await daemon.dispose().catch(() => undefined);
  }
  const ops = [...new Set([...durations.podchart.keys(), ...durations.containerd.keys()])].sort();
  const cell = (ms: number[] | undefined): string => `${fmt(quantile(ms ?? [], 0.5))} | ${fmt(quantile(ms ?? [], 0.9))}`;
  const md = [
    `# critest -benchmark (cri-tools v1.26.1), podchart and containerd back to back (${ROUNDS} rounds of ${SAMPLES} samples each)`, '',
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB. Client-side times from critest, in ms.${process.env['BENCH_PODCHART_ARGS'] ? ` podchartd flags: \`${process.env['BENCH_PODCHART_ARGS']}\`.` : ''}`, '',
    '| benchmark: operation | podchart median | podchart p90 | containerd median | containerd p90 | ratio (median) |', '|---|---|---|---|---|---|',
    ...ops.map((op) => `| ${op} | ${cell(durations.podchart.get(op))} | ${cell(durations.containerd.get(op))} | ${fmt(quantile(durations.podchart.get(op) ?? [], 0.5) / quantile(durations.containerd.get(op) ?? [], 0.5))} |`),
    '',
  ].join('\n');
  mkdirSync(OUT, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(OUT, `critest-bench-${stamp}.json`), JSON.stringify({ samples: SAMPLES, rounds: ROUNDS, podchart: Object.fromEntries(durations.podchart), containerd: Object.fromEntries(durations.containerd) }, null, 2));
  writeFileSync(join(OUT, `critest-bench-${stamp}.md`), md);
  console.log(md);
  console.log(`written: ${join(OUT, `critest-bench-${stamp}.json`)} and .md`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
