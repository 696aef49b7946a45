/** A call's timeline: each step's duration within the call, and the slowest one. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transition } from '../storage/store.js';
import { timeline } from './timeline.js';

const t = (actorId: string, at: number, event: string, from: string, to: string): Transition => ({ actorId, at, event, from, to, error: null, cause: 'StopPodSandbox#3' });

test('a pod stop over its two containers: durations per actor within the call, the slowest marked', () => {
  const rows = [
    t('pod', 1000, 'STOP', 'RUNNING', 'STOPPING.containers'),
    t('c1', 1002, 'STOP', 'RUNNING', 'STOPPING'),
    t('c2', 1003, 'STOP', 'RUNNING', 'STOPPING'),
    t('c1', 1040, 'stopContainer.done', 'STOPPING', 'EXITED'),
    t('c2', 1900, 'stopContainer.done', 'STOPPING', 'EXITED'),
    t('pod', 1905, 'always', 'STOPPING.containers', 'STOPPING.pause'),
    t('pod', 1960, 'stopSandbox.done', 'STOPPING.pause', 'STOPPED'),
  ];
  const kinds: Record<string, 'sandbox' | 'container'> = { pod: 'sandbox', c1: 'container', c2: 'container' };
  const line = timeline('StopPodSandbox#3', rows, (id) => kinds[id] ?? 'unknown');
  assert.deepEqual(line.steps.map((s) => [s.actorId, s.offsetMs, s.ms]), [
    ['pod', 0, 0], ['c1', 2, 2], ['c2', 3, 3], ['c1', 40, 38], ['c2', 900, 897], ['pod', 905, 905], ['pod', 960, 55],
  ]);
  assert.equal(line.slowest, 5, 'the pod waited longest, in STOPPING.containers, for its slow container');
  assert.equal(line.steps[4]?.kind, 'container');
  assert.deepEqual(timeline('x', [], () => 'unknown'), { cause: 'x', steps: [], slowest: null });
});
