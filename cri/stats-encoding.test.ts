/** The fast ListContainerStats item encoding writes exactly what the gRPC serializer writes for the same item. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ContainerSample } from '../actors/stats-sampler.js';
import type { ContainerView } from '../actors/views.js';
import { ZERO_STATS } from '../runtime/cgroup-stats.js';
import { loadCri } from '../proto/load.js';
import { containerMessage } from './stats.js';
import { encodeContainerStatsItem } from './stats-encoding.js';

const def = loadCri().runtimeService.ListContainerStats;
assert.ok(def);

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const text = fc.string({ maxLength: 40 });
const labels = fc.dictionary(text, text, { maxKeys: 5 });

const sample = fc.record({
  id: fc.hexaString({ minLength: 1, maxLength: 64 }),
  name: text,
  attempt: fc.nat(),
  labels,
  annotations: labels,
  dir: fc.constantFrom('/var/lib/podchart/containers/abc', '/tmp/x/y', '/'),
  cpu: u64, memory: u64, workingSet: u64, rss: u64, faults: u64, major: u64, rate: u64,
  limit: fc.option(u64),
  pids: fc.nat(),
  wallNs: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
  layerNs: fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
  bytes: fc.nat(), inodes: fc.nat(),
}).map((s): ContainerSample => ({
  // The encoder reads only these fields of a view.
  view: { id: s.id, context: { spec: { metadata: { name: s.name, attempt: s.attempt }, labels: s.labels, annotations: s.annotations, dir: s.dir } } } as unknown as ContainerView,
  cgroup: {
    stats: { ...ZERO_STATS, cpuUsageNs: s.cpu, memoryUsageBytes: s.memory, memoryWorkingSetBytes: s.workingSet, memoryRssBytes: s.rss, pageFaults: s.faults, majorPageFaults: s.major, pids: s.pids, memoryLimitBytes: s.limit },
    full: false, rateNanoCores: s.rate, wallNs: s.wallNs, atMs: 1,
  },
  layer: { bytes: s.bytes, inodes: s.inodes, wallNs: s.layerNs, atMs: 1 },
}));

test('an item is byte for byte what the gRPC serializer makes of containerMessage, for any sample', () => {
  fc.assert(fc.property(sample, (s) => {
    const fast = encodeContainerStatsItem(s);
    const reference = def.responseSerialize({ stats: [containerMessage(s)] });
    assert.ok(fast.equals(reference), `differs:\n${fast.toString('hex')}\n${reference.toString('hex')}`);
  }), { numRuns: 300 });
});

test('a spec\'s attributes are encoded once and still right for the next sample', () => {
  const [first] = fc.sample(sample, { numRuns: 1, seed: 7 });
  assert.ok(first);
  const next: ContainerSample = { ...first, cgroup: { ...first.cgroup, stats: { ...first.cgroup.stats, cpuUsageNs: first.cgroup.stats.cpuUsageNs / 2n } } };
  encodeContainerStatsItem(first);
  const decoded = def.responseDeserialize(encodeContainerStatsItem(next)) as { stats: { attributes: { id: string }; cpu: { usageCoreNanoSeconds: { value: string } } }[] };
  assert.equal(decoded.stats[0]?.attributes.id, first.view.id);
  assert.equal(decoded.stats[0]?.cpu.usageCoreNanoSeconds.value, String(next.cgroup.stats.cpuUsageNs));
});
