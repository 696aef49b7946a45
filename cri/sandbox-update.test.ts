/** A container's limits fitted into its pod's new ones: lowered only where they exceed them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { podLimits } from '../runtime/pod-cgroup.js';
import { fittedToPod } from './sandbox-update.js';

test('memory above the pod\'s is lowered to it; below, or unlimited, it is kept', () => {
  const pod = podLimits({ memoryLimitInBytes: '1000' }, { memoryLimitInBytes: '24' });
  assert.deepEqual(fittedToPod({ memoryLimitInBytes: '2000', cpuShares: '2' }, pod), { memoryLimitInBytes: '1024', cpuShares: '2' });
  assert.equal(fittedToPod({ memoryLimitInBytes: '512' }, pod), null);
  assert.equal(fittedToPod({ memoryLimitInBytes: '0' }, pod), null, 'unlimited: bounded by the pod already');
  assert.equal(fittedToPod({}, pod), null);
});

test('a CPU quota is compared per period, as the kernel compares it', () => {
  const pod = podLimits({ cpuQuota: '50000', cpuPeriod: '100000' }, null);
  assert.deepEqual(fittedToPod({ cpuQuota: '80000', cpuPeriod: '100000' }, pod), { cpuQuota: '50000', cpuPeriod: '100000' });
  assert.deepEqual(fittedToPod({ cpuQuota: '30000', cpuPeriod: '50000' }, pod), { cpuQuota: '25000', cpuPeriod: '50000' }, '0.6 CPU on a 50 ms period is cut to 0.5');
  assert.equal(fittedToPod({ cpuQuota: '20000', cpuPeriod: '50000' }, pod), null, '0.4 CPU fits');
  assert.equal(fittedToPod({ cpuQuota: '80000' }, podLimits({ cpuQuota: '0' }, null)), null, 'a pod without a quota takes any');
});
