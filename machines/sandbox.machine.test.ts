/**
 * Pure chart tests for the pod sandbox statechart (seed 000 §4.1.1). No I/O: invoked effects are
 * modelled as their done/error events, or (live test) replaced by deterministic FAKE effects.
 * The real effects are tested in actors/. The SPEC table below is the specification: nothing in
 * it is derived from the machine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromPromise, initialTransition, transition, waitFor, type SnapshotFrom } from 'xstate';
import { getShortestPaths, getSimplePaths } from '@xstate/graph';
import { sandboxMachine } from './sandbox.machine.js';
import type { Created, SandboxContext, SandboxEvent, SandboxInput, SandboxSpec, Stopped } from './sandbox.types.js';

type Snap = SnapshotFrom<typeof sandboxMachine>;
type Ev = { type: string; [k: string]: unknown };

const spec: SandboxSpec = {
  name: 'k8s_POD_web_default_uid-1_0', metadata: { name: 'web', uid: 'uid-1', namespace: 'default', attempt: 0 },
  hostname: 'web', logDirectory: '/var/log/pods/default_web_uid-1', labels: {}, annotations: {},
  runtimeHandler: '', runtimePath: '/usr/bin/runc', dns: null, portMappings: [], cgroupParent: '',
  namespaces: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' }, sysctls: {}, oomScoreAdj: -998,
  shmSizeBytes: 64 << 20, rootDir: '/var/lib/podchart/p1', stateDir: '/run/podchart/p1', netnsPath: null,
  createdAt: '1700000000000000000',
};
const input: SandboxInput = { id: 'p1', spec }; // a new pod: the chart defaults tornDown to true

// ── Events. Invoke ids are looked up on the state nodes (and their src checked), not guessed. ──
function invokeId(stateId: string, src: string): string {
  const inv = sandboxMachine.getStateNodeById(stateId).invoke;
  assert.equal(inv.length, 1, `${stateId} invokes one effect`);
  assert.equal(inv[0]!.src, src, `${stateId} invokes ${src}`);
  return inv[0]!.id;
}
const IDS = {
  create: invokeId('sandbox.PENDING.creating', 'createSandbox'),
  rollback: invokeId('sandbox.PENDING.rollingBack', 'rollbackSandbox'),
  stop: invokeId('sandbox.STOPPING.pause', 'stopSandbox'),
  remove: invokeId('sandbox.REMOVING.pod', 'removeSandbox'),
  update: invokeId('sandbox.UPDATING', 'updatePodResources'),
};
const RESOURCES = { resources: { memoryLimitInBytes: '268435456' }, overhead: null };
const created: Created = { pid: 4242, pidStartTime: '9000', network: null };
const stopped: Stopped = { exit: { code: 0, at: '2' } };
const done = (id: string, output?: unknown): Ev => ({ type: `xstate.done.actor.${id}`, output });
const fail = (id: string, msg: string): Ev => ({ type: `xstate.error.actor.${id}`, error: new Error(msg) });

const EVENTS = {
  CREATE: { type: 'CREATE' },
  READY: { type: 'READY', pid: 1001, pidStartTime: '5001' },
  PENDING: { type: 'PENDING' },
  EXIT: { type: 'EXIT', code: 137, at: '1' },
  STOP: { type: 'STOP', timeoutSec: 30 },
  REMOVE: { type: 'REMOVE' },
  UPDATE_RESOURCES: { type: 'UPDATE_RESOURCES', resources: RESOURCES },
  'create.done': done(IDS.create, created),
  'create.error': fail(IDS.create, 'fake: create failed'),
  'rollback.done': done(IDS.rollback),
  'rollback.error': fail(IDS.rollback, 'fake: rollback failed'),
  'stop.done': done(IDS.stop, stopped),
  'stop.error': fail(IDS.stop, 'fake: stop failed'),
  'remove.done': done(IDS.remove),
  'remove.error': fail(IDS.remove, 'fake: remove failed'),
  'update.done': done(IDS.update, RESOURCES),
  'update.error': fail(IDS.update, 'fake: update failed'),
} satisfies Record<string, Ev>;
type EventName = keyof typeof EVENTS;
const CHART_EVENTS = ['CREATE', 'READY', 'PENDING', 'EXIT', 'STOP', 'REMOVE', 'UPDATE_RESOURCES'] as const;
const EFFECT_OF: Record<string, EventName[]> = {
  [IDS.create]: ['create.done', 'create.error'], [IDS.rollback]: ['rollback.done', 'rollback.error'],
  [IDS.stop]: ['stop.done', 'stop.error'], [IDS.remove]: ['remove.done', 'remove.error'],
  [IDS.update]: ['update.done', 'update.error'],
};

// ── The spec. 'refused': can() false, nothing changes. 'no change': accepted, nothing changes.
// to(): the target state; ctx lists the context fields that change (all others must not). ──
type Outcome = 'refused' | 'no change' | { to: string; ctx: Record<string, unknown> };
const R = 'refused', N = 'no change';
const to = (target: string, ctx: Record<string, unknown> = {}): Outcome => ({ to: target, ctx });
const READY_CTX = { pid: 1001, pidStartTime: '5001', tornDown: false, lastError: null };
const EXIT_CTX = { exit: { code: 137, at: '1' } };
const STOP_CTX = { stopTimeoutSec: 30 };
// A pod with no containers: a stop goes straight through STOPPING.containers to the pause, a
// removal through REMOVING.containers to the pod's own effect (sandbox-containers.test.ts has them).
type Row = 'UNKNOWN' | 'PENDING.creating' | 'PENDING.rollingBack' | 'RUNNING' | 'UPDATING' | 'STOPPING.pause'
  | 'STOPPED(tornDown)' | 'STOPPED(!tornDown)' | 'REMOVING.pod' | 'removed';

// Effect events not listed in a row are 'refused' (that effect is not in flight there).
const SPEC: Record<Row, Partial<Record<EventName, Outcome>>> = {
  UNKNOWN: {
    CREATE: to('PENDING.creating'), READY: to('RUNNING', READY_CTX), PENDING: to('PENDING.rollingBack'),
    EXIT: to('STOPPED', EXIT_CTX), STOP: R, REMOVE: to('REMOVING.pod'), UPDATE_RESOURCES: R },
  // Work in flight: PENDING refuses everything; its effect's result decides (READY/EXIT/PENDING: not in the seed; refused).
  'PENDING.creating': { CREATE: R, READY: R, PENDING: R, EXIT: R, STOP: R, REMOVE: R, UPDATE_RESOURCES: R,
    'create.done': to('RUNNING', { ...created, tornDown: false, lastError: null }),
    'create.error': to('PENDING.rollingBack', { lastError: { code: 13, message: 'fake: create failed' } }) },
  'PENDING.rollingBack': { CREATE: R, READY: R, PENDING: R, EXIT: R, STOP: R, REMOVE: R, UPDATE_RESOURCES: R,
    'rollback.done': to('removed'),
    'rollback.error': to('STOPPED', { tornDown: false, lastError: /rollback/ }) },
  // Rule 4: REMOVE of a running pod goes straight to REMOVING.
  RUNNING: { CREATE: R, READY: N, PENDING: N, EXIT: to('STOPPED', EXIT_CTX), STOP: to('STOPPING.pause', STOP_CTX),
    REMOVE: to('REMOVING.pod'), UPDATE_RESOURCES: to('UPDATING', { resourcesRequested: RESOURCES }) },
  // An update in flight (still ready): its effect's result takes it back to RUNNING; STOP and
  // REMOVE wait for it (the service waits out `busy`); an exit seen meanwhile stops the pod.
  UPDATING: { CREATE: R, READY: N, PENDING: N, EXIT: to('STOPPED', EXIT_CTX), STOP: R, REMOVE: R, UPDATE_RESOURCES: R,
    'update.done': to('RUNNING', { resources: RESOURCES, resourcesRequested: null, lastError: null }),
    'update.error': to('RUNNING', { resourcesRequested: null, lastError: { code: 13, message: 'fake: update failed' } }) },
  // A second STOP joins the stop in flight; an EXIT seen meanwhile is recorded; REMOVE waits for the stop.
  'STOPPING.pause': { CREATE: R, READY: N, PENDING: N, EXIT: to('STOPPING.pause', EXIT_CTX), STOP: N, REMOVE: R, UPDATE_RESOURCES: R,
    'stop.done': to('STOPPED', { exit: stopped.exit, tornDown: true, lastError: null }),
    'stop.error': to('STOPPED', { tornDown: false, lastError: { code: 13, message: 'fake: stop failed' } }) },
  // Rules 1 and 2.
  'STOPPED(tornDown)': { CREATE: R, READY: N, PENDING: N, EXIT: N, STOP: N, REMOVE: to('REMOVING.pod'), UPDATE_RESOURCES: R },
  'STOPPED(!tornDown)': { CREATE: R, READY: N, PENDING: N, EXIT: N, STOP: to('STOPPING.pause', STOP_CTX),
    REMOVE: to('REMOVING.pod'), UPDATE_RESOURCES: R },
  // Rule 3: a second REMOVE joins the one in flight.
  'REMOVING.pod': { CREATE: R, READY: N, PENDING: N, EXIT: N, STOP: R, REMOVE: N, UPDATE_RESOURCES: R,
    'remove.done': to('removed'),
    'remove.error': to('STOPPED', { tornDown: false, lastError: { code: 13, message: 'fake: remove failed' } }) },
  removed: { CREATE: R, READY: R, PENDING: R, EXIT: R, STOP: R, REMOVE: R, UPDATE_RESOURCES: R },
};
// Reachable states for a new pod, with the context bit the guard reads.
const EXPECTED_REACHABLE = [
  'UNKNOWN tornDown=true', 'PENDING.creating tornDown=true', 'PENDING.rollingBack tornDown=true',
  'RUNNING tornDown=false', 'UPDATING tornDown=false', 'STOPPING.pause tornDown=false', 'STOPPED tornDown=true', 'STOPPED tornDown=false',
  'REMOVING.pod tornDown=true', 'REMOVING.pod tornDown=false', 'removed tornDown=true', 'removed tornDown=false',
];
const KNOWN_NAMES = new Set(Object.keys(SPEC).map((r) => r.replace(/\(.*$/, '')));

// ── Helpers ──
function nameOf(s: Snap): string {
  const flat = (v: unknown): string =>
    typeof v === 'string' ? v : Object.entries(v as object).map(([k, c]) => `${k}.${flat(c)}`).join(',');
  return flat(s.value);
}
const key = (s: Snap) => `${nameOf(s)} tornDown=${s.context.tornDown}`;
const rowOf = (s: Snap): Row =>
  (nameOf(s) === 'STOPPED' ? (s.context.tornDown ? 'STOPPED(tornDown)' : 'STOPPED(!tornDown)') : nameOf(s)) as Row;
const step = (s: Snap, e: Ev) => transition(sandboxMachine, s, e as SandboxEvent)[0];
const can = (s: Snap, e: Ev) => s.can(e as SandboxEvent);
const handled = (s: Snap, e: Ev) => sandboxMachine.getTransitionData(s, e as SandboxEvent).length > 0;
// Graph events: every chart event, plus done/error of each effect actually in flight (a child's
// result cannot arrive once its state is left, because leaving the state stops the child).
const graphEvents = (s: Snap) =>
  [...CHART_EVENTS, ...Object.keys(s.children).flatMap((id) => EFFECT_OF[id] ?? [])].map((n) => EVENTS[n]) as SandboxEvent[];
const graphOpts = { input, events: graphEvents, serializeState: key };

function outcome(row: Row, ev: EventName): Outcome {
  const o = SPEC[row][ev];
  if (o) return o;
  assert.ok(ev.includes('.'), `SPEC has no cell for ${row} × ${ev}`);
  return R;
}
function checkCell(cur: Snap, ev: EventName, o: Outcome): void {
  const e = EVENTS[ev], next = step(cur, e);
  if (o === R || o === N) {
    // Ask which transitions the chart selects: none means refused, a no-op one means accepted.
    assert.equal(handled(cur, e), o === N, o === N ? 'no change: the event must be accepted' : 'refused: no transition');
    if (o === R) assert.equal(can(cur, e), false, 'refused: can() must be false');
    assert.deepEqual(next.value, cur.value, 'state must not change');
    assert.deepEqual(next.context, cur.context, 'context must not change');
    // An unhandled xstate.error.* marks the snapshot 'error' in xstate; it cannot arrive (see graphEvents).
    if (!e.type.startsWith('xstate.error.')) assert.equal(next.status, cur.status, 'status must not change');
    return;
  }
  assert.equal(can(cur, e), true, 'a transition must be accepted');
  assert.equal(nameOf(next), o.to);
  assert.equal(next.status, o.to === 'removed' ? 'done' : 'active');
  const expected: Record<string, unknown> = { ...cur.context };
  for (const [k, v] of Object.entries(o.ctx)) {
    const actual = (next.context as unknown as Record<string, unknown>)[k];
    // A RegExp matches a string, or a LastError's message (its code is then INTERNAL, 13).
    if (v instanceof RegExp) {
      const text = typeof actual === 'object' && actual !== null && 'message' in actual ? String(actual.message) : String(actual);
      assert.match(text, v, `context.${k}`);
    }
    expected[k] = v instanceof RegExp ? actual : v;
  }
  assert.deepEqual(next.context, expected, 'context: only the listed fields change');
}

const paths = getShortestPaths(sandboxMachine, graphOpts);
const reachable = paths.map((p) => p.state);

describe('(a) reachable states', () => {
  it('starts in UNKNOWN with tornDown=true (pure initialTransition)', () => {
    const [s0] = initialTransition(sandboxMachine, input);
    assert.equal(key(s0), 'UNKNOWN tornDown=true');
    assert.equal(s0.status, 'active');
  });
  it('reaches exactly the expected states', () => {
    assert.deepEqual(new Set(paths.map((p) => key(p.state))), new Set(EXPECTED_REACHABLE));
    assert.equal(paths.length, EXPECTED_REACHABLE.length);
  });
});

describe('(b) every reachable state × every event matches SPEC', () => {
  for (const s of reachable) {
    describe(key(s), () => {
      for (const ev of Object.keys(EVENTS) as EventName[]) {
        const o = outcome(rowOf(s), ev);
        it(`${ev} → ${typeof o === 'string' ? o : o.to}`, () => checkCell(s, ev, o));
      }
    });
  }
  it('accepted no-ops report can() === true (rules 1-3: "no change" is not "refused")', () => {
    const wrong = reachable.flatMap((s) => (Object.keys(EVENTS) as EventName[])
      .filter((ev) => outcome(rowOf(s), ev) === N && !can(s, EVENTS[ev])).map((ev) => `${key(s)} × ${ev}`));
    assert.deepEqual(wrong, []);
  });
});

describe('(c) invariants along every simple path', () => {
  const simple = getSimplePaths(sandboxMachine, graphOpts);
  it('holds on each path', () => {
    assert.ok(simple.length > EXPECTED_REACHABLE.length, `${simple.length} simple paths`);
    let runningRemoves = 0;
    for (const p of simple) {
      // @xstate/graph steps: [{ state: initial, event: xstate.init }, …, { state: p.state, event }]
      const states = p.steps.map((st) => st.state);
      assert.equal(key(states[0]!), 'UNKNOWN tornDown=true');
      const where = states.map(key).join(' → ');
      states.forEach((s, i) => {
        assert.ok(KNOWN_NAMES.has(nameOf(s)), `unknown state ${nameOf(s)} on ${where}`);
        assert.equal(s.status, nameOf(s) === 'removed' ? 'done' : 'active', `status of ${key(s)} on ${where}`);
        const next = states[i + 1];
        if (!next) return;
        if (nameOf(s).startsWith('REMOVING')) assert.match(nameOf(next), /^(removed|STOPPED)$/, `REMOVING left wrongly: ${where}`);
        if (nameOf(s) === 'RUNNING' && p.steps[i + 1]!.event.type === 'REMOVE') {
          runningRemoves++;
          // Until the removal settles (removed, or STOPPED on failure) STOPPING is never visited.
          const after = states.slice(i + 1);
          const settle = after.findIndex((x) => !nameOf(x).startsWith('REMOVING'));
          assert.ok(!after.slice(0, settle < 0 ? undefined : settle + 1).some((x) => nameOf(x).startsWith('STOPPING')), where);
          assert.equal(nameOf(next), 'REMOVING.pod', where);
        }
      });
    }
    assert.ok(runningRemoves > 0, 'some path removes a running pod');
  });
});

describe('(d) live actor with FAKE effects', () => {
  function deferred() {
    let release!: () => void;
    return { gate: new Promise<void>((r) => (release = r)), release: () => release() };
  }
  function fakes() {
    const calls = { create: 0, stop: 0, remove: 0, rollback: 0 };
    const stopGate = deferred(), removeGate = deferred();
    const machine = sandboxMachine.provide({
      actors: {
        // FAKE effects: deterministic, no I/O; they count calls and wait on gates the test opens.
        createSandbox: fromPromise<Created, SandboxContext>(async () => { calls.create++; return created; }),
        stopSandbox: fromPromise<Stopped, SandboxContext>(async () => { calls.stop++; await stopGate.gate; return stopped; }),
        removeSandbox: fromPromise<void, SandboxContext>(async () => { calls.remove++; await removeGate.gate; }),
        rollbackSandbox: fromPromise<void, SandboxContext>(async () => { calls.rollback++; }),
      },
    });
    const actor = createActor(machine, { input });
    const seen: string[] = [];
    actor.subscribe({ next: (s) => seen.push(nameOf(s)), error: () => {} });
    actor.start();
    return { actor, calls, seen, stopGate, removeGate };
  }
  const opts = { timeout: 2000 };

  it('RUNNING + REMOVE → REMOVING → removed; remove runs once, a second REMOVE joins it', async () => {
    const { actor, calls, seen, removeGate } = fakes();
    actor.send({ type: 'CREATE' });
    await waitFor(actor, (s) => s.matches('RUNNING'), opts);
    actor.send({ type: 'REMOVE' });
    await waitFor(actor, (s) => s.matches('REMOVING'), opts);
    assert.equal(actor.getSnapshot().can({ type: 'REMOVE' }), true, 'accepted: it joins');
    actor.send({ type: 'REMOVE' });
    assert.ok(actor.getSnapshot().matches('REMOVING'));
    removeGate.release();
    await waitFor(actor, (s) => s.status === 'done', opts);
    assert.equal(nameOf(actor.getSnapshot()), 'removed');
    assert.deepEqual(calls, { create: 1, stop: 0, remove: 1, rollback: 0 });
    assert.ok(!seen.some((x) => x.startsWith('STOPPING')), seen.join(' → '));
  });

  it('a STOP sent while STOPPING joins the stop in flight', async () => {
    const { actor, calls, stopGate } = fakes();
    actor.send({ type: 'CREATE' });
    await waitFor(actor, (s) => s.matches('RUNNING'), opts);
    actor.send({ type: 'STOP', timeoutSec: 5 });
    await waitFor(actor, (s) => s.matches('STOPPING'), opts);
    actor.send({ type: 'STOP', timeoutSec: 5 });
    assert.ok(actor.getSnapshot().matches('STOPPING'));
    stopGate.release();
    await waitFor(actor, (s) => s.matches('STOPPED'), opts);
    assert.equal(actor.getSnapshot().context.tornDown, true);
    assert.equal(calls.stop, 1);
    actor.stop();
  });
});
