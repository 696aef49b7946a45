/** A pod's limits: its resources plus overhead, written to its cgroup in an order the kernel takes. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EffectFailed } from '../errors/catalogue.js';
import { hostCgroupLayout, weightFromShares } from './cgroup-stats.js';
import { applyPodLimits, podCgroupWrites, podLimits } from './pod-cgroup.js';

test('the overhead is added to each limit the pod sets; an unset one stays unset', () => {
  const limits = podLimits({ memoryLimitInBytes: '1000', cpuShares: '512', cpuQuota: '50000', cpuPeriod: '100000', cpusetCpus: '0' }, { memoryLimitInBytes: '24', cpuShares: '10', cpuQuota: '0' });
  assert.deepEqual(limits, { memoryLimitInBytes: 1024n, cpuShares: 522n, cpuQuota: 50000n, cpuPeriod: 100000n, cpusetCpus: '0', cpusetMems: '' });
  assert.equal(podLimits({ memoryLimitInBytes: '0' }, { memoryLimitInBytes: '24' }).memoryLimitInBytes, 0n, 'an unlimited pod stays unlimited');
  assert.equal(podLimits(null, null).cpuShares, 0n);
});

test('v1: the quota is lifted while the period changes; v2: one cpu.max, and the weight for the shares', () => {
  const limits = podLimits({ memoryLimitInBytes: '1024', cpuShares: '1024', cpuQuota: '20000', cpuPeriod: '50000' }, null);
  assert.deepEqual(podCgroupWrites(limits, 1, '/kubepods/pod1'), [
    ['memory/kubepods/pod1/memory.limit_in_bytes', '1024'],
    ['cpu/kubepods/pod1/cpu.shares', '1024'],
    ['cpu/kubepods/pod1/cpu.cfs_quota_us', '-1'],
    ['cpu/kubepods/pod1/cpu.cfs_period_us', '50000'],
    ['cpu/kubepods/pod1/cpu.cfs_quota_us', '20000'],
  ]);
  assert.deepEqual(podCgroupWrites(limits, 2, '/kubepods/pod1'), [
    ['/kubepods/pod1/memory.max', '1024'],
    ['/kubepods/pod1/cpu.weight', '39'],
    ['/kubepods/pod1/cpu.max', '20000 50000'],
  ]);
  assert.deepEqual([2n, 1024n, 262144n].map(weightFromShares), [1n, 39n, 10000n], 'runc\'s conversion');
  assert.deepEqual(podCgroupWrites(podLimits({}, null), 1, '/p'), [], 'nothing set, nothing written');
});

const layout = hostCgroupLayout();
const parent = `/podchart-podcgroup-test-${process.pid}`;
const controllers = layout.version === 2 ? [''] : ['memory', 'cpu'];
after(async () => {
  for (const c of controllers) if (existsSync(join(layout.root, c, parent))) await rmdir(join(layout.root, c, parent));
});

test('on a real cgroup: the limits land, and a missing cgroup or a refused value is named', async () => {
  for (const c of controllers) await mkdir(join(layout.root, c, parent));
  await applyPodLimits(parent, 'cgroupfs', layout, podLimits({ memoryLimitInBytes: String(64 << 20), cpuQuota: '30000', cpuPeriod: '100000', cpuShares: '256' }, { memoryLimitInBytes: String(1 << 20) }));
  const read = (file: string): string => readFileSync(join(layout.root, file), 'utf8').trim();
  if (layout.version === 1) {
    assert.equal(read(join('memory', parent, 'memory.limit_in_bytes')), String(65 << 20));
    assert.equal(read(join('cpu', parent, 'cpu.cfs_quota_us')), '30000');
    assert.equal(read(join('cpu', parent, 'cpu.shares')), '256');
  } else {
    assert.equal(read(join(parent, 'memory.max')), String(65 << 20));
  }
  await assert.rejects(applyPodLimits('/podchart-no-such-pod', 'cgroupfs', layout, podLimits({ cpuShares: '2' }, null)), (err: Error) => err instanceof EffectFailed && /does not exist/.test(err.message));
  await assert.rejects(applyPodLimits(parent, 'cgroupfs', layout, podLimits({ cpuQuota: '100', cpuPeriod: '100' }, null)), (err: Error) => err instanceof EffectFailed && /cpu\.(cfs_period_us|max).*\((EINVAL|ERANGE)\)/.test(err.message));
});
