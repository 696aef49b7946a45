/** The plain-language account of an actor, from histories as the daemon records them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Transition } from '../storage/store.js';
import { causePhrase, clock, exitMeaning, explain } from './explain.js';

const T0 = Date.UTC(2026, 11, 7, 18, 32, 0);
const row = (s: number, event: string, from: string | null, to: string, cause: string | null, error: string | null = null): Transition => ({ actorId: 'a', event, from, to, at: T0 + s * 1000, error, cause });
const created = [row(0, 'CREATE', 'UNKNOWN', 'PENDING.creating', 'RunPodSandbox#2'), row(1, 'createSandbox.done', 'PENDING.creating', 'RUNNING', 'RunPodSandbox#2')];
const exitNs = (s: number): string => String(BigInt(T0 + s * 1000) * 1_000_000n);

test('exit codes and causes in words', () => {
  assert.equal(exitMeaning(137), 'exit code 137 (SIGKILL: OOM-killed, or killed by someone)');
  assert.equal(exitMeaning(143), 'exit code 143 (SIGTERM)');
  assert.equal(exitMeaning(3), 'exit code 3');
  assert.equal(exitMeaning(0), 'exit code 0 (success)');
  assert.equal(causePhrase('StopPodSandbox#12'), 'by StopPodSandbox (call #12)');
  assert.equal(causePhrase('restore'), 'by the restore after a daemon restart');
  assert.equal(causePhrase(null), '');
  assert.equal(clock(T0 + 11_000), '2026-12-07 18:32:11 UTC');
});

test('a ready pod: since when, by which call, its pause and address; and a restored one says how it was found', () => {
  const ctx = { pid: 4242, network: { ip: '10.88.0.7' }, spec: { pauseProcess: true } };
  const ready = explain('sandbox', 'RUNNING', ctx, created);
  assert.equal(ready.summary, 'Ready since 2026-12-07 18:32:01 UTC by RunPodSandbox (call #2)');
  assert.deepEqual(ready.details, ['pause process: pid 4242', 'network: 10.88.0.7']);
  const restored = explain('sandbox', 'RUNNING', ctx, [...created, row(30, 'READY', 'RUNNING', 'RUNNING', 'restore')]);
  assert.match(restored.details.at(-1) ?? '', /^restored as RUNNING at 2026-12-07 18:32:30 UTC: pause pid 4242 alive with its recorded start time$/);
  const pauseless = explain('sandbox', 'RUNNING', { spec: { pauseProcess: false }, pid: null }, created);
  assert.equal(pauseless.details[0], 'no pause process: its namespaces are pinned by bind mounts');
});

test('a pod whose resources were updated: still ready since its creation, with the limits set; an exit while updating is the exit', () => {
  const ctx = { pid: 4242, spec: { pauseProcess: true }, resources: { resources: { memoryLimitInBytes: '268435456', cpuQuota: '0' }, overhead: null } };
  const updating = [...created, row(40, 'UPDATE_RESOURCES', 'RUNNING', 'UPDATING', 'UpdatePodSandboxResources#7')];
  assert.equal(explain('sandbox', 'UPDATING', ctx, updating).summary, 'Ready; its resources are being written to its cgroup since 2026-12-07 18:32:40 UTC by UpdatePodSandboxResources (call #7)');
  const updated = [...updating, row(41, 'updatePodResources.done', 'UPDATING', 'RUNNING', 'UpdatePodSandboxResources#7')];
  const ready = explain('sandbox', 'RUNNING', ctx, updated);
  assert.equal(ready.summary, 'Ready since 2026-12-07 18:32:01 UTC by RunPodSandbox (call #2)', 'an update is no new readiness');
  assert.deepEqual(ready.details, ['pause process: pid 4242', 'resources (UpdatePodSandboxResources): memoryLimitInBytes 268435456']);
  const exited = explain('sandbox', 'STOPPED', { ...ctx, exit: { code: 137, at: exitNs(42) }, tornDown: false }, [...updating, row(42, 'EXIT', 'UPDATING', 'STOPPED', 'exit')]);
  assert.match(exited.summary, /^NotReady since 2026-12-07 18:32:42 UTC: the pause process exited with exit code 137/);
});

test('a pod NotReady because its pause was killed: the exit, the network still up, what it waits for; after StopPodSandbox the same reason', () => {
  const exited = [...created, row(11, 'EXIT', 'RUNNING', 'STOPPED', 'exit')];
  const ctx = { pid: 4242, exit: { code: 137, at: exitNs(11) }, tornDown: false };
  const why = explain('sandbox', 'STOPPED', ctx, exited);
  assert.equal(why.summary, 'NotReady since 2026-12-07 18:32:11 UTC: the pause process exited with exit code 137 (SIGKILL: OOM-killed, or killed by someone)');
  assert.deepEqual(why.details, ['network still set up: StopPodSandbox tears it down', 'waiting for StopPodSandbox']);
  const stopped = [...exited, row(20, 'STOP', 'STOPPED', 'STOPPING.pause', 'StopPodSandbox#10'), row(21, 'stopSandbox.done', 'STOPPING.pause', 'STOPPED', 'StopPodSandbox#10')];
  const after = explain('sandbox', 'STOPPED', { ...ctx, tornDown: true }, stopped);
  assert.equal(after.summary, why.summary, 'NotReady since the pause exited, not since the stop');
  assert.deepEqual(after.details, ['network torn down: the pause container deleted, CNI DEL done, netns and /dev/shm unmounted', 'waiting for RemovePodSandbox']);
});

test('a pod stopped by kubelet, one mid-stop, one whose stop failed, one being rolled back, one removed', () => {
  const stopping = [...created, row(5, 'STOP', 'RUNNING', 'STOPPING.containers', 'StopPodSandbox#7')];
  assert.equal(explain('sandbox', 'STOPPING.containers', {}, stopping).summary, 'Stopping since 2026-12-07 18:32:05 UTC by StopPodSandbox (call #7): stopping its containers');
  const stopped = [...stopping, row(6, 'stopSandbox.done', 'STOPPING.containers', 'STOPPED', 'StopPodSandbox#7')];
  const byKubelet = explain('sandbox', 'STOPPED', { tornDown: true, exit: { code: 137, at: exitNs(6) } }, stopped);
  assert.equal(byKubelet.summary, 'NotReady since 2026-12-07 18:32:05 UTC: stopped by StopPodSandbox (call #7)');
  assert.equal(byKubelet.details[0], 'the pause process was stopped and exited with exit code 137 (SIGKILL) at 2026-12-07 18:32:06 UTC', 'no OOM guess for a kill the stop sent');
  const pauseless = explain('sandbox', 'STOPPED', { tornDown: true, spec: { pauseProcess: false } }, stopped);
  assert.deepEqual(pauseless.details, ['network torn down: CNI DEL done, netns, namespace pins and /dev/shm unmounted', 'waiting for RemovePodSandbox']);
  const failed = explain('sandbox', 'STOPPED', { tornDown: false, lastError: { code: 14, message: 'CNI DEL failed: plugin timed out' } }, stopped);
  assert.equal(failed.details.at(-1), 'last error: CNI DEL failed: plugin timed out (StopPodSandbox retries it)');
  const rolling = [row(0, 'CREATE', 'UNKNOWN', 'PENDING.creating', 'RunPodSandbox#2'), row(1, 'createSandbox.error', 'PENDING.creating', 'PENDING.rollingBack', 'RunPodSandbox#2', 'bridge: no IP left')];
  const back = explain('sandbox', 'PENDING.rollingBack', { lastError: { code: 14, message: 'bridge: no IP left' } }, rolling);
  assert.equal(back.summary, 'Its creation failed at 2026-12-07 18:32:01 UTC: what it made is being removed');
  assert.deepEqual(back.details, ['last error: bridge: no IP left']);
  const removed = explain('sandbox', 'removed', null, [...stopped, row(40, 'removeSandbox.done', 'REMOVING.pod', 'removed', 'RemovePodSandbox#9')]);
  assert.equal(removed.summary, 'Removed at 2026-12-07 18:32:40 UTC by RemovePodSandbox (call #9)');
  // One whose creation failed says what failed, once it is gone as well.
  const rolledBack = explain('sandbox', 'removed', null, [...rolling, row(2, 'rollbackSandbox.done', 'PENDING.rollingBack', 'removed', 'RunPodSandbox#2')]);
  assert.deepEqual(rolledBack, {
    summary: 'Its creation failed at 2026-12-07 18:32:01 UTC by RunPodSandbox (call #2), and it was rolled back: removed at 2026-12-07 18:32:02 UTC',
    details: ['error: bridge: no IP left', 'only its history is kept, for removedHistoryRetentionSeconds'],
  });
  const badContainer = [row(0, 'CREATE', 'UNKNOWN', 'CREATING', 'CreateContainer#4'), row(1, 'createContainer.error', 'CREATING', 'REMOVING', 'CreateContainer#4', 'runc create: exec format error'), row(2, 'removeContainer.done', 'REMOVING', 'removed', 'CreateContainer#4')];
  assert.match(explain('container', 'removed', null, badContainer).summary, /^Its creation failed at .* by CreateContainer \(call #4\), and it was rolled back/);
});

test('containers: created, running, restored, exited on their own or stopped, removal failed', () => {
  const made = [row(0, 'CREATE', 'UNKNOWN', 'CREATING', 'CreateContainer#6'), row(1, 'createContainer.done', 'CREATING', 'CREATED', 'CreateContainer#6')];
  assert.deepEqual(explain('container', 'CREATED', {}, made), { summary: 'Created at 2026-12-07 18:32:01 UTC by CreateContainer (call #6)', details: ['waiting for StartContainer'] });
  const running = [...made, row(2, 'START', 'CREATED', 'STARTING', 'StartContainer#8'), row(3, 'startContainer.done', 'STARTING', 'RUNNING', 'StartContainer#8')];
  assert.deepEqual(explain('container', 'RUNNING', { pid: 777 }, running), { summary: 'Running since 2026-12-07 18:32:03 UTC', details: ['process: pid 777'] });
  const restored = explain('container', 'RUNNING', { pid: 777 }, [...running, row(50, 'OBSERVED_RUNNING', 'RUNNING', 'RUNNING', 'restore')]);
  assert.equal(restored.details.at(-1), 'restored as RUNNING at 2026-12-07 18:32:50 UTC: pid 777 alive with its recorded start time');
  const exited = explain('container', 'EXITED', { exit: { code: 3, at: exitNs(4), reason: 'Error', message: '' } }, [...running, row(4, 'EXIT', 'RUNNING', 'EXITED', 'exit')]);
  assert.equal(exited.summary, 'Exited at 2026-12-07 18:32:04 UTC with exit code 3, reason Error');
  assert.deepEqual(exited.details, ['waiting for RemoveContainer: a container is never restarted']);
  const stopped = explain('container', 'EXITED', { exit: { code: 143, at: exitNs(6), reason: 'Error', message: '' } }, [...running, row(5, 'STOP', 'RUNNING', 'STOPPING', 'StopContainer#11'), row(6, 'stopContainer.done', 'STOPPING', 'EXITED', 'StopContainer#11')]);
  assert.equal(stopped.summary, 'Exited at 2026-12-07 18:32:06 UTC with exit code 143 (SIGTERM), reason Error (stopped by StopContainer (call #11))');
  const oom = explain('container', 'EXITED', { exit: { code: 137, at: exitNs(7), reason: 'OOMKilled', message: 'memory limit 64Mi' } }, [...running, row(7, 'EXIT', 'RUNNING', 'EXITED', 'exit')]);
  assert.match(oom.summary, /reason OOMKilled$/);
  assert.equal(oom.details[0], 'message: memory limit 64Mi');
  const failed = explain('container', 'REMOVE_FAILED', { lastError: { code: 13, message: 'umount: target is busy' } }, [row(9, 'removeContainer.error', 'REMOVING', 'REMOVE_FAILED', 'RemoveContainer#20', 'umount: target is busy')]);
  assert.deepEqual(failed, { summary: 'Its removal failed at 2026-12-07 18:32:09 UTC', details: ['last error: umount: target is busy (RemoveContainer retries it)'] });
  const lost = explain('container', 'LOST', { pid: 777 }, [...running, row(8, 'CONMON_LOST', 'RUNNING', 'LOST', 'exit')]);
  assert.equal(lost.summary, 'Running since 2026-12-07 18:32:03 UTC');
  assert.match(lost.details[1] ?? '', /conmon is gone/);
});

test('what it cannot read it does not make up: an empty history and context', () => {
  assert.deepEqual(explain('sandbox', 'RUNNING', {}, []), { summary: 'Ready', details: ['pause process: none recorded'] });
  assert.deepEqual(explain('container', 'EXITED', {}, []).summary, 'Exited with no exit code recorded');
  assert.deepEqual(explain('sandbox', 'UNKNOWN', {}, []).summary, 'Not restored yet: the daemon restores it from its last committed state at start');
});
