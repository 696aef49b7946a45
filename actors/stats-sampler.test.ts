/**
 * StatsSampler against real cgroups (made here, as root) and a real writable-layer dir: calls within
 * a period share a sample, layer walks are cached and refreshed behind the calls, removed actors are
 * forgotten, and a cgroup that cannot be read gives zeros and one log line.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { writableLayerUsage } from '../images/rootfs.js';
import { CGROUP_ROOT, hostCgroupLayout } from '../runtime/cgroup-stats.js';
import { CpuRates, StatsSampler, type StatsSamplerOptions } from './stats-sampler.js';
import type { ContainerView, SandboxView } from './views.js';

const PARENT = `/podchart-sampler-test-${process.pid}`;
const made: string[] = [];
const temps: string[] = [];

after(async () => {
  for (const dir of made.reverse()) await rmdir(dir).catch(() => undefined);
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

/** The dirs of a cgroupfs-driver cgroup at `rel` on this host's hierarchy (v1 controllers or v2). */
async function makeCgroup(rel: string): Promise<void> {
  const layout = hostCgroupLayout();
  const dirs = layout.version === 2 ? [join(CGROUP_ROOT, rel)] : ['cpuacct', 'memory', 'pids'].map((c) => join(CGROUP_ROOT, c, rel));
  for (const dir of dirs) {
    if (existsSync(dir)) continue;
    await mkdir(dir, { recursive: true });
    made.push(dir);
  }
}

// Views carry whole actor contexts; the sampler reads only these fields, so the tests build just them.
function podView(id: string, cgroupParent = PARENT): SandboxView {
  return { id, context: { spec: { cgroupParent } } } as unknown as SandboxView;
}
function containerView(id: string, sandboxId: string, dir: string): ContainerView {
  return { id, context: { spec: { sandboxId, dir } } } as unknown as ContainerView;
}

function world(pods: SandboxView[], containers: ContainerView[]): StatsSamplerOptions['supervisor'] {
  // A new id list on every ask, as if the actors changed each time: every call prunes.
  return { views: () => pods, containerViews: () => containers, view: (id) => pods.find((p) => p.id === id) ?? null, liveIds: (kind) => (kind === 'container' ? containers : pods).map((v) => v.id) };
}

function capturedLogger(): { logger: StatsSamplerOptions['logger']; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(chunk.toString()); done(); } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function containerDir(bytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sampler-'));
  temps.push(dir);
  await mkdir(join(dir, 'rootfs', 'upper'), { recursive: true });
  await writeFile(join(dir, 'rootfs', 'upper', 'file'), Buffer.alloc(bytes));
  return dir;
}

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

function sampler(supervisor: StatsSamplerOptions['supervisor'], over: Partial<StatsSamplerOptions> = {}): StatsSampler {
  return new StatsSampler({ supervisor, images: { writableLayerUsage }, driver: 'cgroupfs', periodMs: 60_000, layerPeriodMs: 3_600_000, logger: capturedLogger().logger, ...over });
}

describe('CpuRates', () => {
  test('no rate on first sight; nano-cores over the window; a window under 100 ms keeps the last rate; a counter that goes back starts over', () => {
    const r = new CpuRates();
    assert.equal(r.rate('a', 1_000n, 0n), 0n);
    assert.equal(r.rate('a', 501_000n, 1_000_000_000n), 500_000n);
    assert.equal(r.rate('a', 9_000_000n, 1_050_000_000n), 500_000n, 'a 50 ms window reuses the rate');
    assert.equal(r.rate('a', 10n, 2_000_000_000n), 0n, 'a recreated cgroup');
    r.retain(new Set());
    assert.equal(r.rate('a', 2_000_000_000n, 3_000_000_000n), 0n, 'forgotten, so first sight again');
  });
});

describe('StatsSampler', { skip: process.getuid?.() !== 0 && 'needs root to make cgroups' }, () => {
  test('calls within a period share one cgroup sample; the next period takes a new one', async () => {
    await makeCgroup(`${PARENT}/c1`);
    const pod = podView('p1');
    const c = containerView('c1', 'p1', await containerDir(10));
    const s = sampler(world([pod], [c]), { periodMs: 40 });
    const [first] = await s.containers([c]);
    assert.ok(first);
    assert.equal(first.cgroup.stats.cpuUsageNs, 0n, 'an empty cgroup has used no CPU');
    const [again] = await s.containers([c]);
    assert.equal(again?.cgroup, first.cgroup, 'the same sample within the period');
    const later = await until('a new sample', async () => {
      const [x] = await s.containers([c]);
      return x && x.cgroup !== first.cgroup ? x : null;
    });
    assert.ok(later.cgroup.wallNs >= first.cgroup.wallNs);
    const [podSample] = await s.pods([pod]);
    assert.deepEqual(podSample?.containers.map((x) => x.view.id), ['c1'], 'a pod carries its containers');
  });

  test('a steady poll finds its samples taken shortly before it; a single call leaves nothing scheduled', async () => {
    await makeCgroup(`${PARENT}/c5`);
    const c = containerView('c5', 'p1', await containerDir(10));
    const s = sampler(world([podView('p1')], [c]), { periodMs: 200 });
    // The waits are the poller's period (as kubelet's), not waits for a state.
    const pollAfter = async (ms: number): Promise<{ startedAt: number; sampledAt: number }> => {
      await new Promise((r) => setTimeout(r, ms));
      const startedAt = performance.now();
      const [x] = await s.containers([c]);
      return { startedAt, sampledAt: x?.cgroup.atMs ?? -1 };
    };
    await s.containers([c]);
    const second = await pollAfter(400);
    assert.ok(second.sampledAt >= second.startedAt, 'after one call nothing was refreshed: the second call read its own sample');
    const third = await pollAfter(400);
    assert.ok(third.sampledAt < third.startedAt, 'the third poll found a sample taken before it came');
    assert.ok(third.startedAt - third.sampledAt < 200, `and fresh: ${Math.round(third.startedAt - third.sampledAt)} ms old`);
  });

  test('the writable layer: a walk is reused; an old one is walked again behind the calls', async () => {
    const dir = await containerDir(1000);
    const c = containerView('c2', 'p1', dir);
    const cached = sampler(world([podView('p1')], [c]));
    const [first] = await cached.containers([c]);
    assert.ok((first?.layer.bytes ?? 0) >= 1000, `walked ${first?.layer.bytes} bytes`);
    await writeFile(join(dir, 'rootfs', 'upper', 'more'), Buffer.alloc(200_000));
    const [second] = await cached.containers([c]);
    assert.equal(second?.layer, first?.layer, 'within the period the last walk answers');

    const refreshed = sampler(world([podView('p1')], [c]), { layerPeriodMs: 1 });
    const [old] = await refreshed.containers([c]);
    await writeFile(join(dir, 'rootfs', 'upper', 'more2'), Buffer.alloc(300_000));
    const grown = await until('a new walk to see the write', async () => {
      const [x] = await refreshed.containers([c]);
      return x && x.layer.bytes >= (old?.layer.bytes ?? 0) + 300_000 ? x : null;
    });
    assert.ok(grown.layer.inodes > (old?.layer.inodes ?? 0));
  });

  test('a layer primed at create is walked once, and the first call answers with that walk', async () => {
    const dir = await containerDir(4096);
    const c = containerView('c-primed', 'p1', dir);
    const walked: string[] = [];
    const counting = sampler(world([podView('p1')], [c]), {
      images: { writableLayerUsage: (d) => { walked.push(d); return writableLayerUsage(d); } },
    });
    counting.primeLayer(c);
    counting.primeLayer(c); // a second prime while the first walk runs starts none
    await until('the primed walk to start, before any call', async () => (walked.length > 0 ? true : null));
    const [sample] = await counting.containers([c]);
    assert.ok((sample?.layer.bytes ?? 0) >= 4096, `walked ${sample?.layer.bytes} bytes`);
    assert.deepEqual(walked, [join(dir, 'rootfs')], 'one walk, the primed one');
    counting.primeLayer(c); // already walked: nothing
    await counting.containers([c]);
    assert.equal(walked.length, 1);
  });

  test('a removed container is forgotten: the same id later is walked afresh', async () => {
    const dir = await containerDir(1000);
    const c = containerView('c3', 'p1', dir);
    const containers = [c];
    const s = sampler(world([podView('p1')], containers));
    const [first] = await s.containers([c]);
    containers.length = 0;
    await s.containers([]);
    await writeFile(join(dir, 'rootfs', 'upper', 'more'), Buffer.alloc(100_000));
    containers.push(c);
    const [back] = await s.containers([c]);
    assert.ok((back?.layer.bytes ?? 0) >= (first?.layer.bytes ?? 0) + 100_000, 'walked again, not the removed container\'s walk');
  });

  test('a cgroup that cannot be read reports zeros and is logged once', async () => {
    const { logger, lines } = capturedLogger();
    const pod = podView('p9', 'not-a-slice');
    const c = containerView('c9', 'p9', await containerDir(10));
    const s = sampler(world([pod], [c]), { driver: 'systemd', periodMs: 1, logger });
    for (let i = 0; i < 3; i++) {
      const [x] = await s.containers([c]);
      assert.equal(x?.cgroup.stats.memoryUsageBytes, 0n);
      await new Promise((r) => setImmediate(r));
    }
    const warnings = lines.filter((l) => l.includes('reading cgroup stats failed'));
    assert.equal(warnings.length, 1, warnings.join(''));
    assert.match(warnings[0] ?? '', /c9/);
  });
});
