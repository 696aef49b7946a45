/**
 * What the bench drives: a CRI runtime behind one persistent gRPC client, with its own
 * server-side latency histogram, its pid, the processes it adds per pod, and a crash.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { CriClient } from '../test/cri-client.js';
import type { Daemon } from '../test/daemon.js';
import type { Containerd } from './containerd.js';

/**
 * Seconds summed and calls counted per CRI method, from a runtime's own histogram; with its
 * cumulative bucket counts (upper bound in seconds → calls) where they were read.
 */
export type Totals = Map<string, { sum: number; count: number; buckets?: Map<number, number> }>;

export interface Target {
  name: 'podchart' | 'containerd';
  readonly cri: CriClient;
  /** Its CRI socket's path. */
  socket: string;
  pid(): number;
  /** Server-side time of each method, as go-grpc-prometheus times a Go server: the handler alone. */
  serverTotals(): Promise<Totals>;
  /** podchart only: server-side time including the reply's encoding and write. */
  replyTotals?(): Promise<Totals>;
  /** podchart only: "method\tstep" → the programs, waits and commits of its calls (host/steps.ts). */
  stepTotals?(): Promise<Totals>;
  /** What the runtime itself adds on the host for its pods (shims, conmons, pause), not workloads. */
  runtimeProcesses(): number[];
  /** kill -9 of the daemon (its pods keep running, as in a crash); resolves once it is gone. */
  crash(): Promise<void>;
  /** Starts it again; resolves once its CRI socket serves. */
  restart(): Promise<void>;
  /** podchart only: the laps of its last start (ms), from its readiness log line. */
  startupLaps?(): Record<string, number>;
}

/** One of podchart's CRI histograms: `podchart_cri_handler_duration_seconds` or `..._call_...`. */
/** Each sample line of `metric` (`name{labels} value`) as its labels and value, whatever the labels' order. */
function samplesOf(text: string, metric: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const m of text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] ?? '', l[2] ?? '']));
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

async function podchartTotals(daemon: Daemon, histogram: string): Promise<Totals> {
  const text = await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/metrics`)).text();
  const totals: Totals = new Map();
  const of = (method: string): { sum: number; count: number; buckets: Map<number, number> } => {
    const t = totals.get(method) ?? { sum: 0, count: 0, buckets: new Map<number, number>() };
    totals.set(method, t);
    return t as { sum: number; count: number; buckets: Map<number, number> };
  };
  for (const part of ['sum', 'count'] as const) {
    for (const { labels, value } of samplesOf(text, `${histogram}_${part}`)) if (labels['code'] === 'OK') of(labels['method'] ?? '')[part] = value;
  }
  for (const { labels, value } of samplesOf(text, `${histogram}_bucket`)) {
    if (labels['code'] === 'OK' && labels['le'] !== '+Inf') of(labels['method'] ?? '').buckets.set(Number(labels['le']), value);
  }
  return totals;
}

async function podchartStepTotals(daemon: Daemon): Promise<Totals> {
  const text = await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/metrics`)).text();
  const totals: Totals = new Map();
  for (const part of ['sum', 'count'] as const) {
    for (const { labels, value } of samplesOf(text, `podchart_call_step_duration_seconds_${part}`)) {
      const key = `${labels['rpc'] ?? ''}\t${labels['step'] ?? ''}`;
      const t = totals.get(key) ?? { sum: 0, count: 0 };
      t[part] = value;
      totals.set(key, t);
    }
  }
  return totals;
}

/** Every conmon of the daemon, and each pod's pause process (the child of the pod's conmon). */
function podchartProcesses(base: string): number[] {
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

export function podchartTarget(daemon: Daemon, env: NodeJS.ProcessEnv): Target {
  return {
    name: 'podchart',
    get cri() {
      return daemon.cri;
    },
    socket: daemon.paths.socket,
    pid: () => daemon.pid(),
    serverTotals: () => podchartTotals(daemon, 'podchart_cri_handler_duration_seconds'),
    replyTotals: () => podchartTotals(daemon, 'podchart_cri_call_duration_seconds'),
    stepTotals: () => podchartStepTotals(daemon),
    runtimeProcesses: () => podchartProcesses(daemon.paths.base),
    crash: () => daemon.kill9(),
    restart: () => daemon.start(env),
    startupLaps: () => {
      const lines = daemon.logs().split('\n').filter((l) => l.includes('podchartd serving CRI v1'));
      return (JSON.parse(lines.at(-1) ?? '{}') as { startupMs?: Record<string, number> }).startupMs ?? {};
    },
  };
}

export function containerdTarget(containerd: Containerd): Target {
  return {
    name: 'containerd',
    get cri() {
      return containerd.cri;
    },
    socket: containerd.socket,
    pid: () => containerd.pid(),
    serverTotals: () => containerd.serverTotals(),
    runtimeProcesses: () => containerd.runtimeProcesses(),
    crash: () => containerd.kill9(),
    restart: () => containerd.start(),
  };
}

/** Proportional set size (kB) of a process, from /proc/<pid>/smaps_rollup; 0 once it is gone. */
export function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

/**
 * The median of five readings of `read`, 400 ms apart: one reading of a garbage-collected daemon
 * lands anywhere between two collections (runs of the same build differed by 25 MB of RSS).
 */
export async function settledKb(read: () => number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 5; i++) {
    if (i > 0) await delay(400);
    readings.push(read());
  }
  return readings.sort((a, b) => a - b)[2] ?? 0;
}
