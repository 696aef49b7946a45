/**
 * persist.ts against a real SQLite store: which snapshots become rows and history rows, with which
 * cause. The inspection events are built by hand, as XState delivers them (type, actorRef id,
 * the event taken, the snapshot reached).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { InspectionEvent } from 'xstate';
import { Store } from '../storage/store.js';
import { RowWriter } from './row-writer.js';
import { Recorder } from './persist.js';
import { Causes } from './cause.js';

const logger = pino({ level: 'silent' });

/** `store` is read through `committed`, which writes the turn's group commit first. */
function setup(): { store: Store; committed: () => Store; recorder: Recorder; causes: Causes; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-persist-'));
  const store = new Store(join(dir, 'state.db'));
  const causes = new Causes();
  const writer = new RowWriter({ store, logger });
  const recorder = new Recorder(writer, logger, causes);
  const committed = (): Store => {
    writer.commitPending();
    return store;
  };
  return { store, committed, recorder, causes, done: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

const pod = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id: 'p1', lastError: null, ...extra });

function snapshot(event: string, value: unknown, context: Record<string, unknown>, status = 'active'): InspectionEvent {
  return { type: '@xstate.snapshot', actorRef: { id: 'sandbox:p1' }, rootId: 'x', event: { type: event }, snapshot: { status, value, context } } as unknown as InspectionEvent;
}

test('an unchanged snapshot writes nothing; a changed context updates the row without a history row', () => {
  const { store, committed, recorder, done } = setup();
  try {
    store.insertSandbox('p1', 'pod', 'UNKNOWN', pod());
    recorder.seed('sandbox:p1', 'UNKNOWN', pod());
    assert.equal(recorder.record(snapshot('CREATE', { PENDING: 'creating' }, pod()))?.transition?.to, 'PENDING.creating');
    assert.equal(recorder.record(snapshot('CREATE', { PENDING: 'creating' }, pod()))?.transition, null, 'the same snapshot again is no news');
    assert.equal(recorder.record(snapshot('NOTE', { PENDING: 'creating' }, pod({ pid: 7 })))?.transition, null, 'a context change alone is no transition');
    assert.equal((JSON.parse(committed().loadSandboxes()[0]?.context ?? '{}') as { pid?: number }).pid, 7, 'but the row has the new context');
    assert.deepEqual(committed().history('p1').map((t) => t.to), ['PENDING.creating']);
  } finally {
    done();
  }
});

test('an effect failure is history even without a state change, with the kept error message', () => {
  const { store, recorder, done } = setup();
  try {
    store.insertSandbox('p1', 'pod', 'UNKNOWN', pod());
    recorder.seed('sandbox:p1', 'STOPPED', pod());
    const failed = recorder.record(snapshot('xstate.error.actor.stopSandbox', 'STOPPED', pod({ lastError: { code: 13, message: 'umount: busy' } })));
    assert.equal(failed?.transition?.event, 'stopSandbox.error');
    assert.equal(failed?.transition?.error, 'umount: busy');
  } finally {
    done();
  }
});

test("a CRI call's cause is recorded, and the effects it started inherit it", () => {
  const { store, committed, recorder, causes, done } = setup();
  try {
    store.insertSandbox('p1', 'pod', 'UNKNOWN', pod());
    recorder.seed('sandbox:p1', 'RUNNING', pod());
    causes.with('StopPodSandbox#3', () => recorder.record(snapshot('STOP', { STOPPING: 'pause' }, pod())));
    // The effect's completion comes later, outside the call.
    recorder.record(snapshot('xstate.done.actor.stopSandbox', 'STOPPED', pod()));
    assert.deepEqual(committed().history('p1').map((t) => [t.to, t.cause]), [['STOPPING.pause', 'StopPodSandbox#3'], ['STOPPED', 'StopPodSandbox#3']]);
  } finally {
    done();
  }
});

test("restore's decision is history even when it finds the persisted state", () => {
  const { store, committed, recorder, causes, done } = setup();
  try {
    store.insertSandbox('p1', 'pod', 'RUNNING', pod());
    recorder.seed('sandbox:p1', 'RUNNING', pod());
    assert.equal(recorder.record(snapshot('xstate.init', 'UNKNOWN', pod())), null, "a restored actor's first UNKNOWN is not news");
    const restored = causes.with('restore', () => recorder.record(snapshot('READY', 'RUNNING', pod())));
    assert.equal(restored?.transition?.cause, 'restore');
    assert.deepEqual(committed().history('p1').map((t) => [t.from, t.to]), [['RUNNING', 'RUNNING']]);
  } finally {
    done();
  }
});

test('a done actor: its row goes, and its history ends with "removed"', () => {
  const { store, committed, recorder, done } = setup();
  try {
    store.insertSandbox('p1', 'pod', 'UNKNOWN', pod());
    recorder.seed('sandbox:p1', 'REMOVING.pod', pod());
    const removed = recorder.record(snapshot('xstate.done.actor.removeSandbox', 'removed', pod(), 'done'));
    assert.equal(removed?.state, 'removed');
    assert.equal(committed().loadSandboxes().length, 0);
    assert.deepEqual(committed().history('p1').map((t) => [t.from, t.to]), [['REMOVING.pod', 'removed']]);
  } finally {
    done();
  }
});
