/**
 * The pod sandbox statechart: seed 000 §4.1.1, with work in flight as states.
 *
 *            CREATE                 (effect done)
 *  UNKNOWN ─────────▶ PENDING.creating ─────────▶ RUNNING ──STOP──▶ STOPPING ──▶ STOPPED
 *     │  READY ───────────────────────────────────▶ │  EXIT ─────────────────────▶ │
 *     │  EXIT ─────────────────────────────────────────────────────────────────▶ │
 *     │  PENDING ─▶ PENDING.rollingBack ─▶ removed   │ REMOVE                       │ REMOVE
 *     │  REMOVE ─────────────────────────────────▶ REMOVING ◀────────────────────┘
 *                                                     └──▶ removed (final)
 *
 * UNKNOWN is where every actor starts: a new pod gets CREATE; a restored pod gets the event
 * that the actor layer observed on the host (READY: pause alive; EXIT: pause gone; PENDING:
 * caught half-created, so roll back; REMOVE: caught half-removed, so finish).
 *
 * Seed rules encoded here:
 *  1. stop only acts when running (and, after an exit, once more to tear the network down);
 *  2. in STOPPED, READY / EXIT / PENDING change nothing;
 *  3. in REMOVING, READY / EXIT / PENDING change nothing and CREATE / STOP are refused; a second
 *     REMOVE joins the removal in flight, never a double free (seed 004 inDelete): CRI says
 *     RemovePodSandbox is idempotent, and containerd and CRI-O make the second caller wait;
 *  4. REMOVE of a running pod does not wait for a clean stop: it goes straight to REMOVING,
 *     whose effect kills the pause process and shuts everything down.
 *
 * Pure: no I/O. The four effects are typed placeholders that actors/ provides.
 */
import { assign, enqueueActions, fromPromise, setup, stopChild } from 'xstate';
import { containerMachine } from './container.machine.js';
import type { SandboxContext, SandboxEvent, SandboxInput, Created, Stopped, ExitInfo } from './sandbox.types.js';

export type { SandboxContext, SandboxEvent, SandboxInput } from './sandbox.types.js';

/** A typed stand-in for an effect; actors/ replaces it with `.provide()`. */
function effect<Out>(name: string) {
  return fromPromise<Out, SandboxContext>(() => Promise.reject(new Error(`effect not provided: ${name}`)));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const sandboxMachine = setup({
  types: {
    context: {} as SandboxContext,
    events: {} as SandboxEvent,
    input: {} as SandboxInput,
  },
  actors: {
    createSandbox: effect<Created>('createSandbox'),
    stopSandbox: effect<Stopped>('stopSandbox'),
    removeSandbox: effect<void>('removeSandbox'),
    rollbackSandbox: effect<void>('rollbackSandbox'),
    container: containerMachine,
  },
  guards: {
    needsTeardown: ({ context }) => !context.tornDown,
  },
  actions: {
    // An accepted event that changes nothing (CRI's idempotent calls). XState's can() is false
    // for a transition with neither target nor actions, which would read as a refusal.
    accept: () => undefined,
    recordReady: assign(({ event }) => {
      if (event.type !== 'READY') return {};
      return { pid: event.pid, pidStartTime: event.pidStartTime, tornDown: false, lastError: null };
    }),
    recordExit: assign(({ event }) => {
      if (event.type !== 'EXIT') return {};
      const exit: ExitInfo = { code: event.code, at: event.at };
      return { exit };
    }),
    // Containers are children of their pod, spawned by name with unique system ids.
    addContainer: enqueueActions(({ enqueue, event, context }) => {
      if (event.type !== 'ADD_CONTAINER') return;
      const id = `container:${event.id}`;
      enqueue.spawnChild('container', { id, systemId: id, input: event.input });
      if (!context.containerIds.includes(event.id)) {
        enqueue.assign({ containerIds: [...context.containerIds, event.id] });
      }
    }),
    forgetContainer: enqueueActions(({ enqueue, event, context }) => {
      if (event.type !== 'CONTAINER_REMOVED') return;
      enqueue(stopChild(`container:${event.id}`));
      enqueue.assign({ containerIds: context.containerIds.filter((c) => c !== event.id) });
    }),
    recordStopTimeout: assign(({ event }) => {
      if (event.type !== 'STOP') return {};
      return { stopTimeoutSec: event.timeoutSec };
    }),
  },
}).createMachine({
  id: 'sandbox',
  initial: 'UNKNOWN',
  context: ({ input }) => ({
    ...input,
    pid: input.pid ?? null,
    pidStartTime: input.pidStartTime ?? null,
    exit: input.exit ?? null,
    tornDown: input.tornDown ?? true,
    stopTimeoutSec: input.stopTimeoutSec ?? 10,
    lastError: input.lastError ?? null,
    containerIds: input.containerIds ?? [],
    network: input.network ?? null,
  }),
  // A container may leave whatever the pod is doing.
  on: { CONTAINER_REMOVED: { actions: 'forgetContainer' } },
  states: {
    UNKNOWN: {
      on: {
        // Restore brings the pod's containers back before it observes the pod itself.
        ADD_CONTAINER: { actions: 'addContainer' },
        CREATE: 'PENDING.creating',
        READY: { target: 'RUNNING', actions: 'recordReady' },
        EXIT: { target: 'STOPPED', actions: 'recordExit' },
        PENDING: 'PENDING.rollingBack',
        REMOVE: 'REMOVING',
      },
    },
    PENDING: {
      // Work in flight. STOP and REMOVE are refused until creation settles (kubelet retries).
      initial: 'creating',
      states: {
        creating: {
          invoke: {
            id: 'createSandbox',
            src: 'createSandbox',
            input: ({ context }) => context,
            onDone: {
              target: '#sandbox.RUNNING',
              actions: assign(({ event }) => ({
                pid: event.output.pid,
                pidStartTime: event.output.pidStartTime,
                network: event.output.network,
                tornDown: false,
                lastError: null,
              })),
            },
            onError: {
              target: 'rollingBack',
              actions: assign(({ event }) => ({ lastError: message(event.error) })),
            },
          },
        },
        rollingBack: {
          // [003] errors roll back only what was created; the effect is idempotent.
          invoke: {
            id: 'rollbackSandbox',
            src: 'rollbackSandbox',
            input: ({ context }) => context,
            onDone: '#sandbox.removed',
            onError: {
              // Could not undo everything: keep the pod visible as NOTREADY so remove retries it.
              target: '#sandbox.STOPPED',
              actions: assign(({ event, context }) => ({
                tornDown: false,
                lastError: `${context.lastError ?? 'creation interrupted'}; rollback failed: ${message(event.error)}`,
              })),
            },
          },
        },
      },
    },
    RUNNING: {
      on: {
        // A container can be created only in a ready pod.
        ADD_CONTAINER: { actions: 'addContainer' },
        READY: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        EXIT: { target: 'STOPPED', actions: 'recordExit' },
        STOP: { target: 'STOPPING', actions: 'recordStopTimeout' },
        REMOVE: 'REMOVING',
      },
    },
    STOPPING: {
      on: {
        STOP: { actions: 'accept' }, // joins the stop in flight
        READY: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        EXIT: { actions: 'recordExit' },
      },
      invoke: {
        id: 'stopSandbox',
            src: 'stopSandbox',
        input: ({ context }) => context,
        onDone: {
          target: 'STOPPED',
          actions: assign(({ event, context }) => ({
            exit: event.output.exit ?? context.exit,
            tornDown: true,
            lastError: null,
          })),
        },
        onError: {
          target: 'STOPPED',
          actions: assign(({ event }) => ({ tornDown: false, lastError: message(event.error) })),
        },
      },
    },
    STOPPED: {
      on: {
        READY: { actions: 'accept' },
        EXIT: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        STOP: [{ guard: 'needsTeardown', target: 'STOPPING', actions: 'recordStopTimeout' }, { actions: 'accept' }],
        REMOVE: 'REMOVING',
      },
    },
    REMOVING: {
      on: {
        READY: { actions: 'accept' },
        EXIT: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        REMOVE: { actions: 'accept' }, // joins the removal in flight (rule 3)
      },
      invoke: {
        id: 'removeSandbox',
            src: 'removeSandbox',
        input: ({ context }) => context,
        onDone: 'removed',
        onError: {
          target: 'STOPPED',
          actions: assign(({ event }) => ({ tornDown: false, lastError: message(event.error) })),
        },
      },
    },
    removed: { type: 'final' },
  },
});

export type SandboxMachine = typeof sandboxMachine;
/** The top-level state names, as CRI and the inspector see them. */
export type SandboxStateName = 'UNKNOWN' | 'PENDING' | 'RUNNING' | 'STOPPING' | 'STOPPED' | 'REMOVING' | 'removed';
