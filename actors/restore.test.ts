/**
 * The restore decision table (issue 13, item 4): every persisted state × what the host shows,
 * the events decided, and the state the real chart reaches with them. Written from the restore
 * rules (exit file first, then the pid by its start time, then runc for a start caught midway;
 * half-made work rolled back, half-done stops and removals finished), not derived from the code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromPromise, initialTransition, transition, type SnapshotFrom } from 'xstate';
import { containerMachine } from '../machines/container.machine.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import type { ContainerContext, ContainerExit } from '../machines/container.types.js';
import type { SandboxContext, SandboxSpec } from '../machines/sandbox.types.js';
import { containerNeedsObservation, containerNeedsRuntime, containerRestoreWhy, decideContainer, decidePod, podNeedsObservation, podRestoreWhy, type ContainerObservation, type PodObservation } from './restore.js';
import { stateName } from './actor-util.js';

const NOW = '1800000000000000000';
const EXIT_FILE: ContainerExit = { code: 0, at: '1700000000000000009', reason: 'Completed', message: '' };
const RECORDED: ContainerExit = { code: 137, at: '1700000000000000005', reason: 'Error', message: '' };

const ctr = (exit: ContainerExit | null = null): ContainerContext => ({
  id: 'c1', pid: 4242, pidStartTime: '999', startedAt: '1700000000000000001', exit, stopTimeoutSec: 7, lastError: null, resources: null, podReady: true,
  spec: { sandboxId: 'p1', createdAt: '1700000000000000000', dir: '/var/lib/podchart/containers/c1' } as ContainerContext['spec'],
});

const OBSERVATIONS: Record<string, ContainerObservation> = {
  exited: { exit: EXIT_FILE, alive: false, conmonPid: null, conmonAlive: false, runtime: null },
  running: { exit: null, alive: true, conmonPid: 77, conmonAlive: true, runtime: null },
  conmonGone: { exit: null, alive: true, conmonPid: 77, conmonAlive: false, runtime: null },
  goneSilently: { exit: null, alive: false, conmonPid: null, conmonAlive: false, runtime: null },
  runcRunning: { exit: null, alive: false, conmonPid: null, conmonAlive: false, runtime: { running: true, pid: 5151, pidStartTime: '1001' } },
};
type Seen = keyof typeof OBSERVATIONS;

/** [events decided, state the chart reaches] per persisted state, per observation. */
type Row = Record<Seen, [string[], string]>;
const same = (events: string[], state: string): Row => ({ exited: [events, state], running: [events, state], conmonGone: [events, state], goneSilently: [events, state], runcRunning: [events, state] });
const running = (extra: string[], whenRunning: string, whenLost: string, whenGone: [string[], string], whenRunc: [string[], string]): Row => ({
  exited: [['EXIT'], 'EXITED'],
  running: [['OBSERVED_RUNNING', ...extra], whenRunning],
  conmonGone: [['OBSERVED_RUNNING', 'CONMON_LOST', ...extra], whenLost],
  goneSilently: whenGone,
  runcRunning: whenRunc,
});

const CONTAINER_TABLE: Record<string, Row> = {
  UNKNOWN: same(['ABANDON'], 'REMOVING'),
  CREATING: same(['ABANDON'], 'REMOVING'),
  CREATED: same(['OBSERVED_CREATED'], 'CREATED'),
  STARTING: running([], 'RUNNING', 'LOST', [['EXIT'], 'EXITED'], [['OBSERVED_RUNNING'], 'RUNNING']),
  RUNNING: running([], 'RUNNING', 'LOST', [['EXIT'], 'EXITED'], [['EXIT'], 'EXITED']),
  LOST: running([], 'RUNNING', 'LOST', [['EXIT'], 'EXITED'], [['EXIT'], 'EXITED']),
  UPDATING: running([], 'RUNNING', 'LOST', [['EXIT'], 'EXITED'], [['EXIT'], 'EXITED']),
  STOPPING: running(['STOP'], 'STOPPING', 'STOPPING', [['EXIT'], 'EXITED'], [['EXIT'], 'EXITED']),
  EXITED: running([], 'RUNNING', 'LOST', [['EXIT'], 'EXITED'], [['EXIT'], 'EXITED']),
  REMOVING: same(['REMOVE'], 'REMOVING'),
  REMOVE_FAILED: same(['REMOVE'], 'REMOVING'),
};

const chart = containerMachine.provide({ actions: { tellPodRemoved: () => undefined, tellPod: () => undefined } });

function reach(context: ContainerContext, events: ReturnType<typeof decideContainer>): SnapshotFrom<typeof containerMachine> {
  let [snapshot] = initialTransition(chart, context);
  for (const event of events) [snapshot] = transition(chart, snapshot, event);
  return snapshot;
}

describe('container restore: every persisted state × observation', () => {
  for (const [persisted, row] of Object.entries(CONTAINER_TABLE)) {
    for (const [seen, [events, state]] of Object.entries<[string[], string]>(row)) {
      it(`${persisted} × ${seen} → ${events.join(', ')} → ${state}`, () => {
        const context = ctr(persisted === 'EXITED' ? RECORDED : null);
        const decided = decideContainer(persisted, context, OBSERVATIONS[seen]!, NOW);
        assert.deepEqual(decided.map((e) => e.type), events);
        assert.equal(stateName(reach(context, decided)), state);
      });
    }
  }

  it('the exit reported: the exit file\'s, else the recorded one, else unknown; a start caught midway says so', () => {
    const fromFile = decideContainer('RUNNING', ctr(RECORDED), OBSERVATIONS.exited!, NOW)[0];
    assert.deepEqual(fromFile, { type: 'EXIT', exit: EXIT_FILE });
    const recorded = decideContainer('EXITED', ctr(RECORDED), OBSERVATIONS.goneSilently!, NOW)[0];
    assert.deepEqual(recorded, { type: 'EXIT', exit: RECORDED });
    const unknown = decideContainer('RUNNING', ctr(), OBSERVATIONS.goneSilently!, NOW)[0];
    assert.deepEqual(unknown, { type: 'EXIT', exit: { code: 255, at: NOW, reason: 'Unknown', message: 'the process ended while podchart was down and left no exit file' } });
    const midStart = decideContainer('STARTING', ctr(), OBSERVATIONS.goneSilently!, NOW)[0];
    assert.equal(midStart?.type === 'EXIT' && midStart.exit.reason, 'StartError');
    const runc = decideContainer('STARTING', ctr(), OBSERVATIONS.runcRunning!, NOW)[0];
    assert.deepEqual(runc, { type: 'OBSERVED_RUNNING', pid: 5151, pidStartTime: '1001' }, 'runc\'s pid, not the unrecorded one');
    const stop = decideContainer('STOPPING', ctr(), OBSERVATIONS.running!, NOW)[1];
    assert.deepEqual(stop, { type: 'STOP', timeoutSec: 7 }, 'a stop caught midway is finished with its own grace');
    const lost = decideContainer('RUNNING', ctr(), OBSERVATIONS.conmonGone!, NOW)[1];
    assert.match(lost?.type === 'CONMON_LOST' ? lost.message : '', /conmon \(pid 77\) exited while the container was running/);
  });

  it('the host is looked at only where the decision needs it; runc only for a start caught midway', () => {
    for (const persisted of ['UNKNOWN', 'CREATING', 'CREATED', 'REMOVING', 'REMOVE_FAILED']) assert.equal(containerNeedsObservation(persisted), false, persisted);
    for (const persisted of ['STARTING', 'RUNNING', 'LOST', 'UPDATING', 'STOPPING', 'EXITED']) assert.equal(containerNeedsObservation(persisted), true, persisted);
    assert.equal(containerNeedsRuntime('STARTING', { exit: null, alive: false }), true);
    assert.equal(containerNeedsRuntime('STARTING', { exit: null, alive: true }), false);
    assert.equal(containerNeedsRuntime('RUNNING', { exit: null, alive: false }), false);
  });
});

// ── Pods ──
const podCtx = (pid: number | null = 31, exit: { code: number; at: string } | null = null): SandboxContext => ({
  id: 'p1', spec: { name: 'k8s_POD_p_ns_u_0', metadata: { name: 'p', uid: 'u', namespace: 'ns', attempt: 0 } } as unknown as SandboxSpec,
  pid, pidStartTime: pid === null ? null : '555', exit, tornDown: false, stopTimeoutSec: 4, lastError: null, containerIds: [], containerPhases: {}, network: null,
  resources: null, resourcesRequested: null,
});
const POD_SEEN: Record<string, PodObservation> = {
  alive: { exit: null, alive: true },
  exitFile: { exit: { code: 0, at: '1700000000000000004' }, alive: false },
  gone: { exit: null, alive: false },
};
const POD_TABLE: Record<string, Record<keyof typeof POD_SEEN, [string[], string]>> = {
  UNKNOWN: { alive: [['PENDING'], 'PENDING.rollingBack'], exitFile: [['PENDING'], 'PENDING.rollingBack'], gone: [['PENDING'], 'PENDING.rollingBack'] },
  'PENDING.creating': { alive: [['PENDING'], 'PENDING.rollingBack'], exitFile: [['PENDING'], 'PENDING.rollingBack'], gone: [['PENDING'], 'PENDING.rollingBack'] },
  'PENDING.rollingBack': { alive: [['PENDING'], 'PENDING.rollingBack'], exitFile: [['PENDING'], 'PENDING.rollingBack'], gone: [['PENDING'], 'PENDING.rollingBack'] },
  RUNNING: { alive: [['READY'], 'RUNNING'], exitFile: [['EXIT'], 'STOPPED'], gone: [['EXIT'], 'STOPPED'] },
  // Caught mid-update of its resources: the update asked for is written again (its effect, here, never ends).
  UPDATING: { alive: [['READY', 'UPDATE_RESOURCES'], 'UPDATING'], exitFile: [['EXIT'], 'STOPPED'], gone: [['EXIT'], 'STOPPED'] },
  // No containers: a stop goes straight on to the pause, a removal to the pod's own effect.
  STOPPING: { alive: [['READY', 'STOP'], 'STOPPING.pause'], exitFile: [['EXIT', 'STOP'], 'STOPPING.pause'], gone: [['EXIT', 'STOP'], 'STOPPING.pause'] },
  STOPPED: { alive: [['READY'], 'RUNNING'], exitFile: [['EXIT'], 'STOPPED'], gone: [['EXIT'], 'STOPPED'] },
  REMOVING: { alive: [['REMOVE'], 'REMOVING.pod'], exitFile: [['REMOVE'], 'REMOVING.pod'], gone: [['REMOVE'], 'REMOVING.pod'] },
};

/** FAKE effects that never finish: the state an event leads to stays put to be read. */
const never = fromPromise(() => new Promise<never>(() => undefined));

describe('pod restore: every persisted state × observation', () => {
  for (const [persisted, row] of Object.entries(POD_TABLE)) {
    for (const [seen, [events, state]] of Object.entries(row)) {
      it(`${persisted} × ${seen} → ${events.join(', ')} → ${state}`, () => {
        // STOPPED with a torn-down pod: the STOP of a finished stop needs no teardown.
        const requested = persisted === 'UPDATING' ? { resources: { cpuShares: '512' }, overhead: null } : null;
        const context = { ...podCtx(), tornDown: persisted === 'STOPPED', resourcesRequested: requested };
        const decided = decidePod(persisted, context, POD_SEEN[seen]!, NOW);
        assert.deepEqual(decided.map((e) => e.type), events);
        const actor = createActor(sandboxMachine.provide({ actors: { createSandbox: never, stopSandbox: never, removeSandbox: never, rollbackSandbox: never, updatePodResources: never } as never }), { input: context }).start();
        for (const event of decided) actor.send(event);
        assert.equal(stateName(actor.getSnapshot()), state);
        actor.stop();
      });
    }
  }

  it('the exit code: the exit file\'s, else the recorded one, else unknown; a pod with no pid is never READY', () => {
    assert.deepEqual(decidePod('RUNNING', podCtx(), POD_SEEN.exitFile!, NOW)[0], { type: 'EXIT', code: 0, at: '1700000000000000004' });
    assert.deepEqual(decidePod('STOPPED', podCtx(31, { code: 2, at: '7' }), POD_SEEN.gone!, NOW)[0], { type: 'EXIT', code: 2, at: '7' });
    assert.deepEqual(decidePod('RUNNING', podCtx(), POD_SEEN.gone!, NOW)[0], { type: 'EXIT', code: 255, at: NOW });
    assert.deepEqual(decidePod('RUNNING', podCtx(null), POD_SEEN.alive!, NOW)[0], { type: 'EXIT', code: 255, at: NOW });
    assert.deepEqual(decidePod('STOPPING', podCtx(), POD_SEEN.alive!, NOW)[1], { type: 'STOP', timeoutSec: 4 });
    const requested = { resources: { memoryLimitInBytes: '1024' }, overhead: null };
    assert.deepEqual(decidePod('UPDATING', { ...podCtx(), resourcesRequested: requested }, POD_SEEN.alive!, NOW)[1], { type: 'UPDATE_RESOURCES', resources: requested });
    assert.deepEqual(decidePod('UPDATING', podCtx(), POD_SEEN.alive!, NOW).map((e) => e.type), ['READY'], 'nothing recorded to write: only READY');
    assert.match(podRestoreWhy('UPDATING', podCtx(), POD_SEEN.alive!), /; the resource update caught midway is written again$/);
    for (const persisted of ['UNKNOWN', 'PENDING.creating', 'REMOVING']) assert.equal(podNeedsObservation(persisted), false);
    for (const persisted of ['RUNNING', 'STOPPING', 'STOPPED']) assert.equal(podNeedsObservation(persisted), true);
  });
});

describe('restore decisions in words (the inspector\'s restore view)', () => {
  const none: ContainerObservation = { exit: null, alive: false, conmonPid: null, conmonAlive: false, runtime: null };
  it('says what was seen for each persisted container state', () => {
    const rows: [string, ContainerObservation, RegExp][] = [
      ['CREATING', none, /^caught half-created: rolled back/],
      ['REMOVE_FAILED', none, /^caught mid-removal/],
      ['CREATED', none, /^created and not started: kept/],
      ['RUNNING', { ...none, exit: { code: 3, at: '1', reason: 'Error', message: '' } }, /^the exit file says exit code 3: it exited while the daemon was down$/],
      ['EXITED', { ...none, exit: { code: 3, at: '1', reason: 'Error', message: '' } }, /^the exit file says exit code 3, as persisted: it had exited before the restart$/],
      ['RUNNING', { ...none, alive: true, conmonPid: 9, conmonAlive: true }, /^no exit file, and pid 42 is alive with its recorded start time$/],
      ['RUNNING', { ...none, alive: true, conmonPid: 9, conmonAlive: false }, /but its conmon \(pid 9\) is gone: LOST$/],
      ['STOPPING', { ...none, alive: true, conmonPid: 9, conmonAlive: true }, /the stop caught midway is finished$/],
      ['STARTING', { ...none, runtime: { running: true, pid: 77, pidStartTime: '5' } }, /runc says running, pid 77$/],
      ['STARTING', none, /a failed start$/],
      ['RUNNING', none, /^no exit file, and its pid is gone: it ended while the daemon was down, with no exit code$/],
    ];
    for (const [persisted, seen, expected] of rows) assert.match(containerRestoreWhy(persisted, { pid: 42 }, seen), expected, persisted);
  });
  it('and for each persisted pod state, with a pause or without', () => {
    const withPause = { pid: 7, spec: { pauseProcess: true } as SandboxSpec };
    const without = { pid: null, spec: { pauseProcess: false } as SandboxSpec };
    assert.match(podRestoreWhy('PENDING.creating', withPause, { exit: null, alive: false }), /^caught half-created/);
    assert.match(podRestoreWhy('RUNNING', withPause, { exit: null, alive: true }), /^no exit file, and pause pid 7 is alive with its recorded start time$/);
    assert.match(podRestoreWhy('RUNNING', without, { exit: null, alive: true }), /^its pinned namespaces are still mounted$/);
    assert.match(podRestoreWhy('RUNNING', withPause, { exit: { code: 137, at: '1' }, alive: false }), /exit code 137: it exited while the daemon was down$/);
    assert.match(podRestoreWhy('STOPPING.pause', withPause, { exit: null, alive: false }), /NotReady; the stop caught midway is finished$/);
    assert.match(podRestoreWhy('STOPPED', withPause, { exit: null, alive: false }), /^stopped, and still stopped$/);
    assert.match(podRestoreWhy('STOPPED', withPause, { exit: { code: 0, at: '1' }, alive: false }), /^the pause's exit file says exit code 0, as persisted: it had stopped before the restart$/);
  });
});
