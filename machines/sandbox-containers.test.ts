/**
 * The sandbox chart's rules about its containers (issue 4): a container can be added only to a
 * ready pod (or re-added by restore while the pod is still UNKNOWN), and a container's removal is
 * accepted whatever the pod is doing. Pure transitions; the containers are real child actors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromPromise, waitFor } from 'xstate';
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
