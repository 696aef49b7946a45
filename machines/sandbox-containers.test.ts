/**
 * The sandbox chart's rules about its containers (issue 4): a container can be added only to a
 * ready pod (or re-added by restore while the pod is still UNKNOWN), and a container's removal is
 * accepted whatever the pod is doing. Pure transitions; the containers are real child actors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromPromise, waitFor } from 'xstate';
import { containerMachine } from './container.machine.js';
import { sandboxMachine } from './sandbox.machine.js';
import type { SandboxSpec } from './sandbox.types.js';
import type { ContainerInput } from './container.types.js';

const spec = { name: 'k8s_POD_p_ns_u_0', metadata: { name: 'p', uid: 'u', namespace: 'ns', attempt: 0 } } as unknown as SandboxSpec;
const containerInput = (id: string): ContainerInput => ({ id, spec: { sandboxId: 'p1', createdAt: '1' } as unknown as ContainerInput['spec'] });

/** FAKE effects that never finish: each state stays put while we probe it. */
const pending = fromPromise(() => new Promise<never>(() => undefined));
const settled = fromPromise(async () => ({ pid: 1, pidStartTime: '1', network: null, exit: null }));

function pod(effects: 'pending' | 'settled') {
  const e = effects === 'pending' ? pending : settled;
  return createActor(
    sandboxMachine.provide({ actors: { createSandbox: e, stopSandbox: e, removeSandbox: pending, rollbackSandbox: pending } as never }),
    { input: { id: 'p1', spec } },
  ).start();
}

describe('containers under their pod', () => {
  it('ADD_CONTAINER is accepted in UNKNOWN (restore) and RUNNING, refused in PENDING, STOPPING, STOPPED and REMOVING', async () => {
    const add = { type: 'ADD_CONTAINER' as const, id: 'c1', input: containerInput('c1') };
    const unknown = pod('pending');
    assert.equal(unknown.getSnapshot().can(add), true, 'UNKNOWN (restore)');
    unknown.send({ type: 'CREATE' });
    assert.ok(unknown.getSnapshot().matches('PENDING'));
    assert.equal(unknown.getSnapshot().can(add), false, 'PENDING');

    const running = pod('settled');
    running.send({ type: 'CREATE' });
    await waitFor(running, (s) => s.matches('RUNNING'), { timeout: 2000 });
    assert.equal(running.getSnapshot().can(add), true, 'RUNNING');
    running.send(add);
    assert.deepEqual(running.getSnapshot().context.containerIds, ['c1']);
    assert.ok(running.getSnapshot().children['container:c1'], 'spawned as a child, by its system id');
    running.send({ type: 'CONTAINER_REMOVED', id: 'c1' });
    assert.deepEqual(running.getSnapshot().context.containerIds, []);
    assert.equal(running.getSnapshot().children['container:c1'], undefined, 'the child is gone');

    const stopping = pod('pending');
    stopping.send({ type: 'READY', pid: 1, pidStartTime: '1' });
    stopping.send({ type: 'STOP', timeoutSec: 0 });
    assert.ok(stopping.getSnapshot().matches('STOPPING'));
    assert.equal(stopping.getSnapshot().can(add), false, 'STOPPING');
    assert.equal(stopping.getSnapshot().can({ type: 'CONTAINER_REMOVED', id: 'x' }), true, 'a removal is heard while stopping');

    const stopped = pod('pending');
    stopped.send({ type: 'EXIT', code: 0, at: '1' });
    assert.ok(stopped.getSnapshot().matches('STOPPED'));
    assert.equal(stopped.getSnapshot().can(add), false, 'STOPPED');
    stopped.send({ type: 'REMOVE' });
    assert.ok(stopped.getSnapshot().matches('REMOVING'));
    assert.equal(stopped.getSnapshot().can(add), false, 'REMOVING');
    assert.equal(stopped.getSnapshot().can({ type: 'CONTAINER_REMOVED', id: 'x' }), true, 'a removal is heard while removing');
    for (const a of [unknown, running, stopping, stopped]) a.stop();
  });
});

/**
 * The pod's stop and removal reach its containers through the chart (issue 13, item 1): real
 * container child actors, with FAKE effects that count their calls and wait on gates.
 */
describe('a pod stops and removes its containers itself', () => {
  function gate() {
    let open!: () => void;
    return { wait: new Promise<void>((r) => (open = r)), open: () => open() };
  }
  function world(opts: { removeFails?: string; stopHangs?: string; deadlines?: number } = {}) {
    const calls: string[] = [];
    const startGate = gate();
    const ctrEffects = {
      createContainer: fromPromise<void, { id: string }>(async ({ input }) => { calls.push(`create ${input.id}`); }),
      startContainer: fromPromise(async ({ input }: { input: { id: string } }) => {
        calls.push(`start ${input.id}`);
        if (input.id === 'slow') await startGate.wait;
        return { pid: 10, pidStartTime: '1', startedAt: '2' };
      }),
      stopContainer: fromPromise(async ({ input }: { input: { id: string; stopTimeoutSec: number } }) => {
        calls.push(`stop ${input.id} ${input.stopTimeoutSec}`);
        if (input.id === opts.stopHangs) await new Promise(() => undefined);
        return { code: 137, at: '3', reason: 'Error', message: '' };
      }),
      removeContainer: fromPromise<void, { id: string }>(async ({ input }) => {
        calls.push(`remove ${input.id}`);
        if (input.id === opts.removeFails) throw new Error(`fake: cannot remove ${input.id}`);
      }),
      updateContainer: pending,
    };
    const machine = sandboxMachine.provide({
      actors: {
        createSandbox: fromPromise(async () => ({ pid: 1, pidStartTime: '1', network: null })),
        stopSandbox: fromPromise(async () => { calls.push('stop pause'); return { exit: { code: 0, at: '4' } }; }),
        removeSandbox: fromPromise(async () => { calls.push('remove pod'); }),
        rollbackSandbox: pending,
        container: containerMachine.provide({ actors: ctrEffects as never }),
      } as never,
      ...(opts.deadlines ? { delays: { containerStopDeadline: opts.deadlines, containerRemoveDeadline: opts.deadlines } } : {}),
    });
    const actor = createActor(machine, { input: { id: 'p1', spec } }).start();
    return { actor, calls, startGate };
  }
  const child = (actor: ReturnType<typeof world>['actor'], id: string) =>
    actor.getSnapshot().children[`container:${id}`] as unknown as import('xstate').Actor<typeof containerMachine>;
  async function withContainers(w: ReturnType<typeof world>, ids: { id: string; start: boolean }[]) {
    w.actor.send({ type: 'CREATE' });
    await waitFor(w.actor, (s) => s.matches('RUNNING'), { timeout: 2000 });
    for (const { id, start } of ids) {
      w.actor.send({ type: 'ADD_CONTAINER', id, input: containerInput(id) });
      const c = child(w.actor, id);
      c.send({ type: 'CREATE' });
      await waitFor(c, (s) => s.matches('CREATED'), { timeout: 2000 });
      if (start) c.send({ type: 'START' });
    }
  }

  it('STOP: each running container is stopped without grace, the busy one waited for, and only then the pause', async () => {
    const w = world();
    await withContainers(w, [{ id: 'a', start: true }, { id: 'slow', start: true }, { id: 'idle', start: false }]);
    await waitFor(child(w.actor, 'a'), (s) => s.matches('RUNNING'), { timeout: 2000 });
    assert.ok(child(w.actor, 'slow').getSnapshot().matches('STARTING'));
    w.actor.send({ type: 'STOP', timeoutSec: 30 });
    await waitFor(child(w.actor, 'a'), (s) => s.matches('EXITED'), { timeout: 2000 });
    assert.ok(w.actor.getSnapshot().matches({ STOPPING: 'containers' }), 'the pod waits for the container still starting');
    assert.ok(!w.calls.includes('stop pause'));
    w.startGate.open();
    await waitFor(w.actor, (s) => s.matches('STOPPED'), { timeout: 2000 });
    assert.deepEqual(w.calls.filter((c) => c.startsWith('stop')), ['stop a 0', 'stop slow 0', 'stop pause'], 'containers first, no grace, the idle one untouched, then the pause');
    assert.ok(child(w.actor, 'slow').getSnapshot().matches('EXITED'));
    assert.ok(child(w.actor, 'idle').getSnapshot().matches('CREATED'));
    assert.equal(child(w.actor, 'idle').getSnapshot().can({ type: 'START' }), false, 'no start in a pod that is not ready');
    w.actor.stop();
  });

  // The deadline's transition is in the pod's history (the inspector shows it); the pod's own
  // stop then succeeding clears lastError, as any successful stop does.
  it('STOP past the deadline the chart names: the pause is stopped anyway', async () => {
    const w = world({ stopHangs: 'a', deadlines: 50 });
    await withContainers(w, [{ id: 'a', start: true }]);
    await waitFor(child(w.actor, 'a'), (s) => s.matches('RUNNING'), { timeout: 2000 });
    w.actor.send({ type: 'STOP', timeoutSec: 0 });
    await waitFor(w.actor, (s) => s.matches('STOPPED'), { timeout: 2000 });
    assert.ok(w.calls.includes('stop pause'));
    assert.equal(w.actor.getSnapshot().context.lastError, null, 'the pause stop succeeded: the pod is stopped');
    w.actor.stop();
  });

  it('REMOVE: every container removed first, then the pod; a failed one keeps the pod, named, and the next REMOVE retries', async () => {
    const w = world({ removeFails: 'b' });
    await withContainers(w, [{ id: 'a', start: true }, { id: 'b', start: false }]);
    await waitFor(child(w.actor, 'a'), (s) => s.matches('RUNNING'), { timeout: 2000 });
    w.actor.send({ type: 'REMOVE' });
    await waitFor(w.actor, (s) => s.matches('STOPPED'), { timeout: 2000 });
    const ctx = w.actor.getSnapshot().context;
    assert.deepEqual(ctx.containerIds, ['b'], 'a is gone, b is left');
    assert.match(ctx.lastError?.message ?? '', /container could not be removed: b: fake: cannot remove b/);
    assert.ok(!w.calls.includes('remove pod'), 'the pod stays while a container does');
    w.actor.send({ type: 'REMOVE' });
    await waitFor(w.actor, (s) => s.matches('STOPPED') && w.calls.filter((c) => c === 'remove b').length === 2, { timeout: 2000 });
    assert.equal(w.calls.filter((c) => c === 'remove b').length, 2, 'retried once per pod removal, not in a loop');
    w.actor.stop();
  });

  it('REMOVE with every container removable ends the pod', async () => {
    const w = world();
    await withContainers(w, [{ id: 'a', start: true }, { id: 'b', start: false }]);
    w.actor.send({ type: 'REMOVE' });
    await waitFor(w.actor, (s) => s.status === 'done', { timeout: 2000 });
    assert.deepEqual(w.calls.filter((c) => c.startsWith('remove')).sort(), ['remove a', 'remove b', 'remove pod']);
    assert.equal(w.calls.at(-1), 'remove pod', 'the pod last');
  });
});
