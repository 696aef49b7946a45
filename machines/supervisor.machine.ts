/**
 * The root actor: it owns one child per pod sandbox (and, through them, their containers).
 *
 *   RESTORING ──RESTORED──▶ SERVING ──SHUTDOWN──▶ STOPPED (final)
 *
 * Children are spawned by name with unique system ids (`sandbox:<id>`), never as inline logic,
 * so each can be persisted as its own row. CRI calls are served only in SERVING.
 */
import { enqueueActions, setup, stopChild } from 'xstate';
import { sandboxMachine } from './sandbox.machine.js';
import type { SandboxInput } from './sandbox.types.js';

export type SupervisorEvent =
  | { type: 'SPAWN_SANDBOX'; id: string; input: SandboxInput }
  | { type: 'FORGET_SANDBOX'; id: string }
  | { type: 'RESTORED' }
  | { type: 'SHUTDOWN' };

export const sandboxSystemId = (id: string): string => `sandbox:${id}`;

export const supervisorMachine = setup({
  types: { events: {} as SupervisorEvent },
  actors: { sandbox: sandboxMachine },
  actions: {
    spawnSandbox: enqueueActions(({ enqueue, event }) => {
      if (event.type !== 'SPAWN_SANDBOX') return;
      const id = sandboxSystemId(event.id);
      enqueue.spawnChild('sandbox', { id, systemId: id, input: event.input });
    }),
    forgetSandbox: stopChild(({ event }) => (event.type === 'FORGET_SANDBOX' ? sandboxSystemId(event.id) : '')),
  },
}).createMachine({
  id: 'supervisor',
  initial: 'RESTORING',
  states: {
    RESTORING: {
      on: {
        SPAWN_SANDBOX: { actions: 'spawnSandbox' },
        FORGET_SANDBOX: { actions: 'forgetSandbox' },
        RESTORED: 'SERVING',
      },
    },
    SERVING: {
      on: {
        SPAWN_SANDBOX: { actions: 'spawnSandbox' },
        FORGET_SANDBOX: { actions: 'forgetSandbox' },
        SHUTDOWN: 'STOPPED',
      },
    },
    // Final: children stop with it, but their processes (conmon, pause) keep running.
    STOPPED: { type: 'final' },
  },
});
