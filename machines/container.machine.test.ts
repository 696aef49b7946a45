/**
 * Pure chart tests for the container statechart (seeds 001, 002). No I/O: invoked effects are
 * modelled as their done/error events, or (live tests) replaced by deterministic FAKE effects.
 * The real effects are tested in actors/. The SPEC table below is the specification, written from
 * the container rules; nothing in it is derived from the machine.
 *
 * sendParent: the final state `removed` runs `tellPodRemoved`, a sendParent. In xstate 5 a pure
 * `transition` (and @xstate/graph's traversal) resolves send targets while computing the step, and
 * with no parent it throws "Unable to send event to actor '#_parent'". So the pure sections run
 * PURE_CHART, the chart with only that action's implementation stubbed (pure transitions collect
 * actions without executing them, so the stub never runs; what is checked is the snapshot and that
 * the step schedules `tellPodRemoved`). The live section runs the real action under a test parent.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assign, createActor, fromPromise, initialTransition, setup, transition, waitFor,
  type AnyEventObject, type SnapshotFrom,
} from 'xstate';
import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import { containerMachine, START_ERROR_EXIT_CODE } from './container.machine.js';
import {
  CONTAINER_EVENT_TYPES,
  type ContainerContext, type ContainerEvent, type ContainerExit, type ContainerInput, type ContainerSpecRecord, type Started,
} from './container.types.js';

// Pure transitions collect actions, they never execute them; this stub only replaces the
// sendParent so that a step into `removed` can be computed without a parent (see above).
const PURE_CHART = containerMachine.provide({ actions: { tellPodRemoved: () => undefined, tellPod: () => undefined } });

type Snap = SnapshotFrom<typeof containerMachine>;
type Ev = { type: string; [k: string]: unknown };

const spec: ContainerSpecRecord = {
  name: 'k8s_app_web_default_uid-1_0', metadata: { name: 'app', attempt: 0 }, sandboxId: 'p1',
  image: 'docker.io/library/busybox:latest', imageId: 'sha256:aaaa', imageRef: 'docker.io/library/busybox@sha256:bbbb',
  config: {}, labels: {}, annotations: {}, logPath: '', dir: '/var/lib/podchart/c1', runtimeHandler: '',
  runtimePath: '/usr/bin/runc', stopSignal: 'SIGTERM', tty: false, stdin: false, stdinOnce: false,
  createdAt: '1700000000000000000',
};
const input: ContainerInput = { id: 'c1', spec, podReady: true }; // a new container (nothing restored) in a ready pod

// ── Events. Invoke ids are looked up on the state nodes (and their src checked), not guessed. ──
function invokeId(stateId: string, src: string): string {
  const inv = containerMachine.getStateNodeById(stateId).invoke;
  assert.equal(inv.length, 1, `${stateId} invokes one effect`);
  assert.equal(inv[0]!.src, src, `${stateId} invokes ${src}`);
  return inv[0]!.id;
}
const IDS = {
  create: invokeId('container.CREATING', 'createContainer'),
  start: invokeId('container.STARTING', 'startContainer'),
  update: invokeId('container.UPDATING', 'updateContainer'),
  stop: invokeId('container.STOPPING', 'stopContainer'),
  remove: invokeId('container.REMOVING', 'removeContainer'),
};
type Effect = keyof typeof IDS;

const CONMON_LOST_MESSAGE = 'conmon (pid 77) exited while the container was running; its output is no longer logged';
const EXITED_BY_SIGNAL: ContainerExit = { code: 143, at: '1700000000000000003', reason: 'Error', message: 'fake: terminated' };
const STOP_OUTPUT: ContainerExit = { code: 0, at: '1700000000000000004', reason: 'Completed', message: '' };
const STARTED: Started = { pid: 4242, pidStartTime: '9000', startedAt: '1700000000000000002' };
const RESOURCES_ASKED = { cpuShares: 512 };
const RESOURCES_APPLIED = { cpuShares: 512, memoryLimitInBytes: 268435456 }; // differs: the output is what counts
const done = (id: string, output?: unknown): Ev => ({ type: `xstate.done.actor.${id}`, output });
const fail = (id: string, msg: string): Ev => ({ type: `xstate.error.actor.${id}`, error: new Error(msg) });

const CHART_EVENTS = ['CREATE', 'START', 'STOP', 'EXIT', 'REMOVE', 'UPDATE', 'CONMON_LOST', 'OBSERVED_CREATED', 'OBSERVED_RUNNING', 'ABANDON'] as const;
type ChartEvent = (typeof CHART_EVENTS)[number];
const EVENTS = {
  CREATE: { type: 'CREATE' },
  START: { type: 'START' },
  STOP: { type: 'STOP', timeoutSec: 30 },
  EXIT: { type: 'EXIT', exit: EXITED_BY_SIGNAL },
  REMOVE: { type: 'REMOVE' },
  UPDATE: { type: 'UPDATE', resources: RESOURCES_ASKED },
  CONMON_LOST: { type: 'CONMON_LOST', message: CONMON_LOST_MESSAGE },
  OBSERVED_CREATED: { type: 'OBSERVED_CREATED' },
  OBSERVED_RUNNING: { type: 'OBSERVED_RUNNING', pid: 1001, pidStartTime: '5001' },
  ABANDON: { type: 'ABANDON' },
  'create.done': done(IDS.create),
  'create.error': fail(IDS.create, 'fake: create failed'),
  'start.done': done(IDS.start, STARTED),
  'start.error': fail(IDS.start, 'fake: start failed'),
  'update.done': done(IDS.update, RESOURCES_APPLIED),
  'update.error': fail(IDS.update, 'fake: update failed'),
  'stop.done': done(IDS.stop, STOP_OUTPUT),
  'stop.error': fail(IDS.stop, 'fake: stop failed'),
  'remove.done': done(IDS.remove),
  'remove.error': fail(IDS.remove, 'fake: remove failed'),
} satisfies Record<string, Ev>;
type EventName = keyof typeof EVENTS;
type EffectEvent = Exclude<EventName, ChartEvent>;
const effectEvents = (e: Effect): EffectEvent[] => [`${e}.done`, `${e}.error`];

// ── The SPEC. 'refused': no transition (can() false), nothing changes. 'no change': accepted
// (can() true), nothing changes. to(): the target state; ctx lists the context fields the step
// sets (every other field must stay as it was). Like(): only the named fields of that value are
// specified. Every CRI and restore event has a cell in every row; a row's effect has a cell for
// its done and its error event, and effect events are sent only where that effect runs. ──
class Like { constructor(readonly fields: Record<string, unknown>) {} }
type Outcome = 'refused' | 'no change' | { to: string; ctx: Record<string, unknown> };
const R = 'refused', N = 'no change';
const to = (target: string, ctx: Record<string, unknown> = {}): Outcome => ({ to: target, ctx });
// The restore events are only meaningful in UNKNOWN; elsewhere they are refused (except that
// RUNNING accepts OBSERVED_RUNNING as a no-op).
const RESTORE_REFUSED = { OBSERVED_CREATED: R, OBSERVED_RUNNING: R, ABANDON: R } as const;
const EXIT_CTX = { exit: EXITED_BY_SIGNAL };
// conmon is watched only while RUNNING: elsewhere its loss is refused (LOST accepts a repeat).
const LOST_REFUSED = { CONMON_LOST: R } as const;
const STARTED_CTX = { pid: STARTED.pid, pidStartTime: STARTED.pidStartTime, startedAt: STARTED.startedAt, lastError: null };

type Row = 'UNKNOWN' | 'CREATING' | 'CREATED' | 'STARTING' | 'STARTING(exit)' | 'RUNNING' | 'LOST' | 'UPDATING' | 'UPDATING(exit)'
  | 'STOPPING' | 'STOPPING(exit)' | 'EXITED' | 'REMOVING' | 'REMOVE_FAILED' | 'REMOVE_FAILED(exit)' | 'removed';
interface RowSpec { effect: Effect | null; cells: Record<ChartEvent, Outcome> & Partial<Record<EffectEvent, Outcome>> }
const SPEC: Record<Row, RowSpec> = {
  UNKNOWN: { effect: null, cells: {
    CREATE: to('CREATING'), OBSERVED_CREATED: to('CREATED'),
    OBSERVED_RUNNING: to('RUNNING', { pid: 1001, pidStartTime: '5001' }), EXIT: to('EXITED', EXIT_CTX),
    ABANDON: to('REMOVING'), REMOVE: to('REMOVING'), START: R, STOP: R, UPDATE: R, CONMON_LOST: R } },
  CREATING: { effect: 'create', cells: {
    START: R, STOP: R, REMOVE: R, UPDATE: R, CREATE: R, EXIT: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'create.done': to('CREATED'), 'create.error': to('REMOVING', { lastError: { code: 13, message: 'fake: create failed' } }) } },
  CREATED: { effect: null, cells: {
    START: to('STARTING'), STOP: N, REMOVE: to('REMOVING'), CREATE: R, UPDATE: R, EXIT: R, ...RESTORE_REFUSED, ...LOST_REFUSED } },
  STARTING: { effect: 'start', cells: {
    EXIT: to('STARTING', EXIT_CTX), START: R, STOP: R, REMOVE: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'start.done': to('RUNNING', STARTED_CTX),
    'start.error': to('EXITED', { exit: new Like({ code: 128, reason: 'StartError' }), lastError: { code: 13, message: 'fake: start failed' } }) } },
  // An EXIT arrived during STARTING. The process did start, so the start output is kept. On a start
  // error the rules name no exit for this case; the recorded (observed) exit is kept, as STOPPING
  // keeps "the exit already recorded" over the effect's.
  'STARTING(exit)': { effect: 'start', cells: {
    EXIT: to('STARTING', EXIT_CTX), START: R, STOP: R, REMOVE: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'start.done': to('EXITED', { ...STARTED_CTX, ...EXIT_CTX }),
    'start.error': to('EXITED', { ...EXIT_CTX, lastError: { code: 13, message: 'fake: start failed' } }) } },
  RUNNING: { effect: null, cells: {
    STOP: to('STOPPING', { stopTimeoutSec: 30 }), EXIT: to('EXITED', EXIT_CTX), REMOVE: to('REMOVING'),
    UPDATE: to('UPDATING'), OBSERVED_RUNNING: N, START: R, CREATE: R, OBSERVED_CREATED: R, ABANDON: R,
    CONMON_LOST: to('LOST', { lastError: { code: 13, message: CONMON_LOST_MESSAGE } }) } },
  // conmon is gone, the process may run: STOP and REMOVE kill it without conmon.
  LOST: { effect: null, cells: {
    STOP: to('STOPPING', { stopTimeoutSec: 30 }), EXIT: to('EXITED', EXIT_CTX), REMOVE: to('REMOVING'), CONMON_LOST: N,
    UPDATE: R, START: R, CREATE: R, ...RESTORE_REFUSED } },
  UPDATING: { effect: 'update', cells: {
    EXIT: to('UPDATING', EXIT_CTX), START: R, STOP: R, REMOVE: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'update.done': to('RUNNING', { resources: RESOURCES_APPLIED, lastError: null }),
    'update.error': to('RUNNING', { lastError: { code: 13, message: 'fake: update failed' } }) } },
  'UPDATING(exit)': { effect: 'update', cells: {
    EXIT: to('UPDATING', EXIT_CTX), START: R, STOP: R, REMOVE: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'update.done': to('EXITED'), 'update.error': to('EXITED', { lastError: { code: 13, message: 'fake: update failed' } }) } },
  STOPPING: { effect: 'stop', cells: {
    STOP: N, EXIT: to('STOPPING', EXIT_CTX), REMOVE: R, START: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'stop.done': to('EXITED', { exit: STOP_OUTPUT, lastError: null }),
    'stop.error': to('RUNNING', { lastError: { code: 13, message: 'fake: stop failed' } }) } },
  'STOPPING(exit)': { effect: 'stop', cells: {
    STOP: N, EXIT: to('STOPPING', EXIT_CTX), REMOVE: R, START: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'stop.done': to('EXITED', { ...EXIT_CTX, lastError: null }),
    'stop.error': to('EXITED', { lastError: { code: 13, message: 'fake: stop failed' } }) } },
  // A container is never restarted.
  EXITED: { effect: null, cells: {
    STOP: N, EXIT: N, REMOVE: to('REMOVING'), START: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED } },
  // A second remove joins the one in flight (CRI: Remove is idempotent), never a double free.
  // A failed remove reports what failed and no exit it did not observe.
  REMOVING: { effect: 'remove', cells: {
    EXIT: to('REMOVING', EXIT_CTX), REMOVE: N, START: R, STOP: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED,
    'remove.done': to('removed'), 'remove.error': to('REMOVE_FAILED', { lastError: { code: 13, message: 'fake: remove failed' } }) } },
  // The next REMOVE retries. An observed exit is recorded once; STOP is a no-op only after one.
  REMOVE_FAILED: { effect: null, cells: {
    REMOVE: to('REMOVING'), EXIT: to('REMOVE_FAILED', EXIT_CTX), STOP: R, START: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED } },
  'REMOVE_FAILED(exit)': { effect: null, cells: {
    REMOVE: to('REMOVING'), EXIT: N, STOP: N, START: R, UPDATE: R, CREATE: R, ...RESTORE_REFUSED, ...LOST_REFUSED } },
  removed: { effect: null, cells: {
    CREATE: R, START: R, STOP: R, EXIT: R, REMOVE: R, UPDATE: R, CONMON_LOST: R, OBSERVED_CREATED: R, OBSERVED_RUNNING: R, ABANDON: R } },
};
// Reachable states of a new container, with the context bit the hasExited guards read. With these
// effect outputs there is no 'EXITED exit=no': a failed remove once led there, and CRI reported
// exit code 0 for a process that may still have run; it now goes to REMOVE_FAILED.
const EXPECTED_REACHABLE = [
  'UNKNOWN exit=no', 'CREATING exit=no', 'CREATED exit=no', 'STARTING exit=no', 'STARTING exit=yes',
  'RUNNING exit=no', 'LOST exit=no', 'UPDATING exit=no', 'UPDATING exit=yes', 'STOPPING exit=no', 'STOPPING exit=yes',
  'EXITED exit=yes', 'REMOVING exit=no', 'REMOVING exit=yes',
  'REMOVE_FAILED exit=no', 'REMOVE_FAILED exit=yes', 'removed exit=no', 'removed exit=yes',
];
const KNOWN_NAMES = new Set(Object.keys(SPEC).map((r) => r.replace(/\(.*$/, '')));

// ── Helpers ──
function nameOf(s: Snap): string {
  assert.equal(typeof s.value, 'string', 'the container chart is flat');
  return s.value;
}
const key = (s: Snap) => `${nameOf(s)} exit=${s.context.exit === null ? 'no' : 'yes'}`;
const WITH_EXIT_ROW = new Set(['STARTING', 'UPDATING', 'STOPPING', 'REMOVE_FAILED']);
const rowOf = (s: Snap): Row => `${nameOf(s)}${WITH_EXIT_ROW.has(nameOf(s)) && s.context.exit !== null ? '(exit)' : ''}` as Row;
const step = (s: Snap, e: Ev) => transition(PURE_CHART, s, e as ContainerEvent);
const can = (s: Snap, e: Ev) => s.can(e as ContainerEvent);
const handled = (s: Snap, e: Ev) => PURE_CHART.getTransitionData(s, e as ContainerEvent).length > 0;
const EFFECT_BY_ID: Record<string, Effect> = Object.fromEntries(Object.entries(IDS).map(([e, id]) => [id, e as Effect]));
// Graph events: every chart event, plus done/error of each effect actually in flight (a child's
// result cannot arrive once its state is left, because leaving the state stops the child).
const inFlight = (s: Snap): Effect[] => Object.keys(s.children).map((id) => EFFECT_BY_ID[id]!);
const eventsFor = (s: Snap): EventName[] => [...CHART_EVENTS, ...inFlight(s).flatMap(effectEvents)];
const graphOpts = { input, events: (s: Snap) => eventsFor(s).map((n) => EVENTS[n]) as ContainerEvent[], serializeState: key };

// The same child actors (by id and identity). Compared here, not by assert, so a failure never
// has assert render actor refs (each drags its whole actor system into the message).
const sameChildren = (a: Snap, b: Snap): boolean => {
  const ak = Object.keys(a.children), bk = Object.keys(b.children);
  return ak.length === bk.length && ak.every((id) => (a.children as Record<string, unknown>)[id] === (b.children as Record<string, unknown>)[id]);
};

function checkCell(cur: Snap, ev: EventName, o: Outcome): void {
  const e = EVENTS[ev];
  const [next, actions] = step(cur, e);
  const types = actions.map((a) => a.type);
  if (o === R || o === N) {
    // Ask which transitions the chart selects: none means refused, a no-op one means accepted.
    assert.equal(handled(cur, e), o === N, o === N ? 'no change: the event must be accepted' : 'refused: no transition');
    assert.equal(can(cur, e), o === N, `can() must be ${o === N}`);
    if (o === R) assert.deepEqual(types, [], 'refused: no actions');
    assert.deepEqual(next.value, cur.value, 'state must not change');
    assert.deepEqual(next.context, cur.context, 'context must not change');
    assert.equal(next.status, cur.status, 'status must not change');
    assert.ok(sameChildren(next, cur), 'the effect in flight (if any) is kept, not restarted');
    assert.ok(!types.some((t) => /^xstate\.(spawnChild|stopChild)$/.test(t)), `no effect started or stopped: ${types.join(',')}`);
    return;
  }
  assert.equal(can(cur, e), true, 'a transition must be accepted');
  assert.equal(nameOf(next), o.to);
  assert.equal(next.status, o.to === 'removed' ? 'done' : 'active');
  // The pod hears of the removal exactly when `removed` is entered.
  assert.equal(types.filter((t) => t === 'tellPodRemoved').length, o.to === 'removed' ? 1 : 0, `actions: ${types.join(',')}`);
  if (o.to === nameOf(cur)) {
    assert.ok(sameChildren(next, cur), 'staying in the state keeps its effect in flight');
    assert.ok(!types.some((t) => /^xstate\.(spawnChild|stopChild)$/.test(t)), `no effect restarted: ${types.join(',')}`);
  }
  const expected: Record<string, unknown> = { ...cur.context };
  for (const [k, v] of Object.entries(o.ctx)) {
    const actual: unknown = (next.context as unknown as Record<string, unknown>)[k];
    if (v instanceof Like) {
      assert.ok(actual !== null && typeof actual === 'object', `context.${k} must be set`);
      for (const [f, fv] of Object.entries(v.fields)) assert.deepEqual((actual as Record<string, unknown>)[f], fv, `context.${k}.${f}`);
      expected[k] = actual;
    } else expected[k] = v;
  }
  assert.deepEqual(next.context, expected, 'context: only the listed fields change');
}

const paths = getShortestPaths(PURE_CHART, graphOpts);
const reachable = paths.map((p) => p.state);

describe('sendParent in pure transitions (why PURE_CHART exists)', () => {
  it('the real chart enters `removed` with tellPodRemoved, a sendParent; without a parent the pure step throws', () => {
    const entry = containerMachine.getStateNodeById('container.removed').entry;
    assert.deepEqual(entry.map((a: unknown) => (typeof a === 'string' ? a : (a as { type?: string }).type)), ['tellPodRemoved']);
    const impl = containerMachine.implementations.actions.tellPodRemoved as unknown as { type: string; to: unknown };
    assert.deepEqual([impl.type, impl.to], ['xstate.sendTo', '#_parent']);
    const reporting = containerMachine.provide({ actions: { tellPod: () => undefined } }); // only the removal's sendParent left real
    const [s0] = initialTransition(reporting, input);
    const [removing] = transition(reporting, s0, { type: 'REMOVE' });
    assert.equal(nameOf(removing), 'REMOVING');
    assert.throws(() => transition(reporting, removing, EVENTS['remove.done'] as ContainerEvent), /#_parent/);
  });
});

describe('(a) reachable states', () => {
  it('the event list is the chart\'s event vocabulary', () => {
    // POD_READY is the pod's side of the parent–child protocol: section (e) tests it on its own.
    assert.deepEqual([...CHART_EVENTS, 'POD_READY'].sort(), [...CONTAINER_EVENT_TYPES].sort());
    assert.equal(START_ERROR_EXIT_CODE, 128);
  });
  it('starts in UNKNOWN with nothing in flight (pure initialTransition)', () => {
    const [s0, actions] = initialTransition(PURE_CHART, input);
    assert.equal(key(s0), 'UNKNOWN exit=no');
    assert.equal(s0.status, 'active');
    assert.deepEqual(Object.keys(s0.children), []);
    assert.deepEqual(actions.map((a) => a.type), ['tellPod'], 'it tells its pod it is idle');
  });
  it('reaches exactly the expected states', () => {
    assert.deepEqual(paths.map((p) => key(p.state)).sort(), [...EXPECTED_REACHABLE].sort());
  });
  it('each reachable state runs exactly the effect its SPEC row names', () => {
    const wrong = reachable.filter((s) => {
      const eff = SPEC[rowOf(s)].effect;
      return JSON.stringify(Object.keys(s.children)) !== JSON.stringify(eff ? [IDS[eff]] : []);
    }).map(key);
    assert.deepEqual(wrong, []);
  });
});

describe('(b) every reachable state × every event matches SPEC', () => {
  it('SPEC rows have cells for exactly their effect\'s done and error', () => {
    for (const [row, { effect, cells }] of Object.entries(SPEC)) {
      const effectCells = Object.keys(cells).filter((c) => c.includes('.')).sort();
      assert.deepEqual(effectCells, effect ? effectEvents(effect).sort() : [], row);
    }
  });
  for (const s of reachable) {
    describe(key(s), () => {
      for (const ev of eventsFor(s)) {
        const o = SPEC[rowOf(s)].cells[ev];
        it(`${ev} → ${o === undefined ? '(no cell)' : typeof o === 'string' ? o : o.to}`, () => {
          assert.ok(o !== undefined, `SPEC has no cell for ${rowOf(s)} × ${ev}`);
          checkCell(s, ev, o);
        });
      }
    });
  }
  // The cells above run on one snapshot per state key (its shortest path). The same SPEC must hold
  // in every reachable context, e.g. an UPDATING entered with a lastError from an earlier failure.
  it('SPEC holds in every reachable context, not only on each state key\'s first snapshot', () => {
    const fullKey = (s: Snap) => JSON.stringify([s.value, s.context]);
    const all = getShortestPaths(PURE_CHART, { ...graphOpts, serializeState: fullKey }).map((p) => p.state);
    assert.ok(all.length > 10 * reachable.length, `${all.length} reachable contexts`);
    assert.deepEqual([...new Set(all.map(key))].sort(), [...EXPECTED_REACHABLE].sort());
    const failures: string[] = [];
    for (const s of all) {
      for (const ev of eventsFor(s)) {
        const o = SPEC[rowOf(s)].cells[ev];
        try {
          assert.ok(o !== undefined, 'no SPEC cell');
          checkCell(s, ev, o);
        } catch (err) {
          failures.push(`${fullKey(s)} × ${ev}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });
  it('every SPEC row is exercised by some reachable state', () => {
    assert.deepEqual([...new Set(reachable.map(rowOf))].sort(), Object.keys(SPEC).sort());
  });
});

describe('(c) invariants along every simple path', () => {
  const simple = getSimplePaths(PURE_CHART, graphOpts);
  it('holds on each path', () => {
    assert.ok(simple.length > EXPECTED_REACHABLE.length, `${simple.length} simple paths`);
    let leftRemoving = 0, afterExited = 0, reachedRemoved = 0, failedRemove = 0;
    for (const p of simple) {
      // @xstate/graph steps: [{ state: initial, event: xstate.init }, …, { state: p.state, event }]
      const states = p.steps.map((st) => st.state);
      assert.equal(key(states[0]!), 'UNKNOWN exit=no');
      const where = p.steps.map((st) => `${st.event.type} → ${key(st.state)}`).join(' | ');
      let exited = false;
      states.forEach((s, i) => {
        const name = nameOf(s);
        assert.ok(KNOWN_NAMES.has(name), `unknown state ${name} on ${where}`);
        assert.equal(s.status, name === 'removed' ? 'done' : 'active', `status of ${key(s)} on ${where}`);
        // A container that reached EXITED never runs again: only EXITED and removal states follow.
        if (exited) {
          afterExited++;
          assert.notEqual(name, 'RUNNING', `RUNNING after EXITED: ${where}`);
          assert.match(name, /^(EXITED|REMOVING|REMOVE_FAILED|removed)$/, `after EXITED: ${where}`);
        }
        if (name === 'EXITED') exited = true;
        if (name === 'removed') {
          reachedRemoved++;
          assert.equal(nameOf(states[i - 1]!), 'REMOVING', `removed only through REMOVING: ${where}`);
          assert.equal(p.steps[i]!.event.type, `xstate.done.actor.${IDS.remove}`, where);
        }
        const next = states[i + 1];
        if (name === 'REMOVING' && next && nameOf(next) !== 'REMOVING') {
          leftRemoving++;
          assert.match(nameOf(next), /^(removed|REMOVE_FAILED)$/, `REMOVING left wrongly: ${where}`);
          // A failed remove never makes up an exit: it has one only if one was observed before.
          if (nameOf(next) === 'REMOVE_FAILED') {
            failedRemove++;
            assert.deepEqual(next.context.exit, s.context.exit, `exit made up by a failed remove: ${where}`);
          }
        }
      });
    }
    assert.ok(leftRemoving > 0 && afterExited > 0 && reachedRemoved > 0 && failedRemove > 0,
      `${leftRemoving} ${afterExited} ${reachedRemoved} ${failedRemove}`);
  });
});

describe('(d) live actor with FAKE effects, under a test parent', () => {
  function deferred() {
    let release!: () => void;
    return { gate: new Promise<void>((r) => (release = r)), release: () => release() };
  }
  function live() {
    const calls = { create: 0, start: 0, update: 0, stop: 0, remove: 0 };
    const startGate = deferred(), stopGate = deferred(), removeGate = deferred();
    const fakeFaults = { removeFails: 0 }; // FAKE fault: the next n removals fail
    const fakeChart = containerMachine.provide({
      actors: {
        // FAKE effects: deterministic, no I/O; they count calls and wait on gates the test opens.
        createContainer: fromPromise<void, ContainerContext>(async () => { calls.create++; }),
        startContainer: fromPromise<Started, ContainerContext>(async () => { calls.start++; await startGate.gate; return STARTED; }),
        stopContainer: fromPromise<ContainerExit | null, ContainerContext>(async () => { calls.stop++; await stopGate.gate; return STOP_OUTPUT; }),
        removeContainer: fromPromise<void, ContainerContext>(async () => {
          calls.remove++;
          await removeGate.gate;
          if (fakeFaults.removeFails > 0) { fakeFaults.removeFails--; throw new Error('fake: runc delete failed'); }
        }),
        updateContainer: fromPromise<Record<string, unknown>, { context: ContainerContext; resources: Record<string, unknown> }>(
          async () => { calls.update++; return RESOURCES_APPLIED; }),
      },
    });
    // The tiny test parent (the pod's place): runs the container as a child and records every event it gets.
    const testParent = setup({
      types: { context: {} as { received: AnyEventObject[] } },
      actors: { container: fakeChart },
    }).createMachine({
      context: { received: [] },
      invoke: { id: 'ctr', src: 'container', input },
      on: { '*': { actions: assign({ received: ({ context, event }) => [...context.received, event] }) } },
    });
    const parent = createActor(testParent);
    const errors: unknown[] = [];
    parent.subscribe({ error: (err) => errors.push(err) });
    parent.start();
    const ctr = parent.getSnapshot().children.ctr;
    assert.ok(ctr, 'the parent runs the container');
    const seen: string[] = [];
    ctr.subscribe({ next: (s) => seen.push(nameOf(s)), error: (err) => errors.push(err) });
    const removedEvents = () => parent.getSnapshot().context.received.filter((e) => e.type === 'CONTAINER_REMOVED');
    return { parent, ctr, calls, seen, errors, removedEvents, startGate, stopGate, removeGate, fakeFaults };
  }
  const opts = { timeout: 2000 };

  it('REMOVE while RUNNING runs removeContainer once (a second REMOVE joins it); the parent hears once', async () => {
    const { parent, ctr, calls, seen, errors, removedEvents, startGate, removeGate } = live();
    startGate.release();
    ctr.send({ type: 'CREATE' });
    await waitFor(ctr, (s) => s.matches('CREATED'), opts);
    ctr.send({ type: 'START' });
    await waitFor(ctr, (s) => s.matches('RUNNING'), opts);
    assert.equal(ctr.getSnapshot().can({ type: 'REMOVE' }), true);
    ctr.send({ type: 'REMOVE' });
    assert.ok(ctr.getSnapshot().matches('REMOVING'));
    assert.equal(ctr.getSnapshot().can({ type: 'REMOVE' }), true, 'a second REMOVE is accepted: it joins');
    ctr.send({ type: 'REMOVE' });
    assert.ok(ctr.getSnapshot().matches('REMOVING'));
    assert.deepEqual(removedEvents(), [], 'nothing is removed before the effect completes');
    removeGate.release();
    await waitFor(ctr, (s) => s.status === 'done', opts);
    // The child's done event reaches the parent after anything the child sent on its way out.
    await waitFor(parent, (s) => s.context.received.some((e) => e.type === 'xstate.done.actor.ctr'), opts);
    assert.equal(nameOf(ctr.getSnapshot()), 'removed');
    assert.deepEqual(calls, { create: 1, start: 1, update: 0, stop: 0, remove: 1 });
    assert.ok(!seen.includes('STOPPING'), `a forced remove does not stop first: ${seen.join(' → ')}`);
    assert.deepEqual(removedEvents(), [{ type: 'CONTAINER_REMOVED', id: 'c1' }]);
    assert.deepEqual(errors, []);
    parent.stop();
  });

  it('a failed forced remove is REMOVE_FAILED with the error and no exit; the next REMOVE retries', async () => {
    const { parent, ctr, calls, errors, removedEvents, startGate, removeGate, fakeFaults } = live();
    startGate.release();
    removeGate.release();
    fakeFaults.removeFails = 1;
    ctr.send({ type: 'CREATE' });
    await waitFor(ctr, (s) => s.matches('CREATED'), opts);
    ctr.send({ type: 'START' });
    await waitFor(ctr, (s) => s.matches('RUNNING'), opts);
    ctr.send({ type: 'REMOVE' });
    ctr.send({ type: 'REMOVE' }); // a second caller joins: one removal, one outcome
    const failed = await waitFor(ctr, (s) => !s.matches('REMOVING'), opts);
    assert.equal(nameOf(failed), 'REMOVE_FAILED');
    assert.deepEqual(failed.context.lastError, { code: 13, message: 'fake: runc delete failed' });
    assert.equal(failed.context.exit, null, 'no exit was observed, so none is reported');
    assert.equal(calls.remove, 1);
    assert.equal(failed.can({ type: 'STOP', timeoutSec: 0 }), false, 'the process may run: STOP is no no-op');
    ctr.send({ type: 'EXIT', exit: EXITED_BY_SIGNAL });
    assert.deepEqual(ctr.getSnapshot().context.exit, EXITED_BY_SIGNAL, 'an observed exit is recorded');
    assert.ok(ctr.getSnapshot().matches('REMOVE_FAILED'));
    ctr.send({ type: 'REMOVE' });
    await waitFor(ctr, (s) => s.status === 'done', opts);
    assert.equal(calls.remove, 2);
    await waitFor(parent, (s) => s.context.received.some((e) => e.type === 'xstate.done.actor.ctr'), opts);
    assert.deepEqual(removedEvents(), [{ type: 'CONTAINER_REMOVED', id: 'c1' }]);
    assert.deepEqual(errors, []);
    parent.stop();
  });

  it('a STOP sent while STOPPING joins the stop in flight: stopContainer runs once', async () => {
    const { parent, ctr, calls, errors, removedEvents, startGate, stopGate } = live();
    startGate.release();
    ctr.send({ type: 'CREATE' });
    await waitFor(ctr, (s) => s.matches('CREATED'), opts);
    ctr.send({ type: 'START' });
    await waitFor(ctr, (s) => s.matches('RUNNING'), opts);
    ctr.send({ type: 'STOP', timeoutSec: 5 });
    assert.ok(ctr.getSnapshot().matches('STOPPING'));
    assert.equal(ctr.getSnapshot().can({ type: 'STOP', timeoutSec: 7 }), true, 'STOP is accepted while STOPPING');
    ctr.send({ type: 'STOP', timeoutSec: 7 });
    assert.ok(ctr.getSnapshot().matches('STOPPING'));
    assert.equal(ctr.getSnapshot().context.stopTimeoutSec, 5, 'the joined STOP changes nothing');
    stopGate.release();
    const s = await waitFor(ctr, (x) => x.matches('EXITED'), opts);
    assert.deepEqual(s.context.exit, STOP_OUTPUT);
    assert.equal(calls.stop, 1);
    assert.deepEqual(removedEvents(), []);
    assert.deepEqual(errors, []);
    parent.stop();
  });

  it('an EXIT during STARTING leads to EXITED when the start effect completes', async () => {
    const { parent, ctr, calls, seen, errors, startGate } = live();
    ctr.send({ type: 'CREATE' });
    await waitFor(ctr, (s) => s.matches('CREATED'), opts);
    ctr.send({ type: 'START' });
    assert.ok(ctr.getSnapshot().matches('STARTING'));
    ctr.send({ type: 'EXIT', exit: EXITED_BY_SIGNAL });
    assert.ok(ctr.getSnapshot().matches('STARTING'), 'the start is still in flight');
    assert.deepEqual(ctr.getSnapshot().context.exit, EXITED_BY_SIGNAL, 'the exit is recorded');
    startGate.release();
    const s = await waitFor(ctr, (x) => x.matches('EXITED'), opts);
    assert.deepEqual(s.context.exit, EXITED_BY_SIGNAL);
    assert.equal(s.context.startedAt, STARTED.startedAt);
    assert.ok(!seen.includes('RUNNING'), seen.join(' → '));
    assert.equal(calls.start, 1);
    assert.deepEqual(errors, []);
    parent.stop();
  });
});

describe('(e) the pod–container protocol', () => {
  it('POD_READY is heard in every state and changes only podReady; START waits for a ready pod', () => {
    for (const s of reachable.filter((r) => r.status === 'active')) {
      const [next] = step(s, { type: 'POD_READY', ready: false });
      assert.deepEqual(next.value, s.value, `${key(s)}: POD_READY moves nothing`);
      assert.deepEqual(next.context, { ...s.context, podReady: false }, `${key(s)}: only podReady changes`);
    }
    const created = reachable.find((r) => nameOf(r) === 'CREATED')!;
    const [notReady] = step(created, { type: 'POD_READY', ready: false });
    assert.equal(can(notReady, EVENTS.START), false, 'START refused while the pod is not ready');
    const [ready] = step(notReady, { type: 'POD_READY', ready: true });
    assert.equal(nameOf(step(ready, EVENTS.START)[0]), 'STARTING');
  });

  it('each state tells the pod its phase on entry, and carries the tags the supervisor reads', () => {
    const phases: Record<string, [string, string[]]> = {
      UNKNOWN: ['idle', ['CONTAINER_UNKNOWN']], CREATING: ['busy', ['busy', 'CONTAINER_CREATED']], CREATED: ['idle', ['CONTAINER_CREATED']],
      STARTING: ['busy', ['busy', 'processMayRun', 'CONTAINER_CREATED']], RUNNING: ['running', ['processMayRun', 'CONTAINER_RUNNING']],
      LOST: ['running', ['processMayRun', 'CONTAINER_UNKNOWN']], UPDATING: ['busy', ['busy', 'processMayRun', 'CONTAINER_RUNNING']],
      STOPPING: ['busy', ['busy', 'processMayRun', 'CONTAINER_RUNNING']], EXITED: ['idle', ['CONTAINER_EXITED']],
      REMOVING: ['busy', ['busy', 'processMayRun', 'CONTAINER_EXITED']],
      // No CRI tag: EXITED with an observed exit, UNKNOWN without (cri/container-view.ts).
      REMOVE_FAILED: ['failed', ['processMayRun']],
    };
    for (const [state, [phase, tags]] of Object.entries(phases)) {
      const node = containerMachine.getStateNodeById(`container.${state}`);
      const entry = node.entry.map((a: unknown) => a as { type?: string; params?: { phase?: string } });
      assert.deepEqual(entry.map((a) => [a.type, a.params?.phase]), [['tellPod', phase]], state);
      assert.deepEqual([...node.tags].sort(), [...tags].sort(), `${state} tags`);
    }
  });
});
