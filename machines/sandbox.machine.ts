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
 *  RUNNING ──UPDATE_RESOURCES──▶ UPDATING (the pod's cgroup written; still ready) ──▶ RUNNING
 *
 *  STOPPING:  containers ──(none runs or is busy; or containerStopDeadline)──▶ pause ──▶ STOPPED
 *  REMOVING:  containers ──(all removed)──▶ pod ──▶ removed
 *                 └──(one failed; or containerRemoveDeadline)──▶ STOPPED, with lastError
 *
 * The pod's containers are its child actors. Each tells the pod what it is doing as it enters
 * a state (CONTAINER_STATE: busy, running, failed or idle); the pod tells them whether it is
 * RUNNING (POD_READY: a container starts only in a ready pod). A stop first sends STOP (no
 * grace, as containerd) to each running container, waits for the busy ones to settle and the
 * running ones to end, within a deadline this chart names; a removal sends REMOVE to each and
 * waits for them to go. Only then does the pod's own effect run.
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
 * Pure: no I/O. The five effects are typed placeholders that actors/ provides.
 */
import { assign, enqueueActions, fromPromise, sendTo, setup, stopChild, type SnapshotFrom } from 'xstate';
import type { StatePath, TopState } from './state-path.js';
import { containerMachine } from './container.machine.js';
import type { SandboxContext, SandboxEvent, SandboxInput, Created, Stopped, ExitInfo, PodResources } from './sandbox.types.js';
import { DEADLINE_EXCEEDED_CODE, INTERNAL_CODE, lastErrorOf } from './last-error.js';

export type { SandboxContext, SandboxEvent, SandboxInput } from './sandbox.types.js';

/** A typed stand-in for an effect; actors/ replaces it with `.provide()`. */
function effect<Out>(name: string) {
  return fromPromise<Out, SandboxContext>(() => Promise.reject(new Error(`effect not provided: ${name}`)));
}


export const sandboxMachine = setup({
  types: {
    context: {} as SandboxContext,
    events: {} as SandboxEvent,
    input: {} as SandboxInput,
    // `busy`: an effect or a wait on the containers is in flight; `ready`: CRI's SANDBOX_READY.
    tags: {} as 'busy' | 'ready',
  },
  actors: {
    createSandbox: effect<Created>('createSandbox'),
    stopSandbox: effect<Stopped>('stopSandbox'),
    removeSandbox: effect<void>('removeSandbox'),
    rollbackSandbox: effect<void>('rollbackSandbox'),
    updatePodResources: effect<PodResources>('updatePodResources'),
    container: containerMachine,
  },
  guards: {
    needsTeardown: ({ context }) => !context.tornDown,
    // A container that never reported counts as idle: it has not started anything.
    containersStopped: ({ context }) =>
      context.containerIds.every((id) => !['busy', 'running'].includes(context.containerPhases[id]?.phase ?? 'idle')),
    containersRemoved: ({ context }) => context.containerIds.length === 0,
    containerRemovalFailed: ({ context }) =>
      context.containerIds.some((id) => context.containerPhases[id]?.phase === 'failed') &&
      context.containerIds.every((id) => context.containerPhases[id]?.phase !== 'busy'),
  },
  delays: {
    // How long a pod's stop waits for its containers before killing the pause anyway, and its
    // removal before giving up (kubelet retries the removal).
    containerStopDeadline: 60_000,
    containerRemoveDeadline: 60_000,
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
      if (!context.containerIds.includes(event.id)) enqueue.assign({ containerIds: [...context.containerIds, event.id] });
    }),
    // Added to a RUNNING pod, a container may start; a restored one hears so when the pod gets there.
    tellNewContainerReady: sendTo(({ event }) => `container:${event.type === 'ADD_CONTAINER' ? event.id : ''}`, { type: 'POD_READY', ready: true }),
    forgetContainer: enqueueActions(({ enqueue, event, context }) => {
      if (event.type !== 'CONTAINER_REMOVED') return;
      enqueue(stopChild(`container:${event.id}`));
      const phases = Object.fromEntries(Object.entries(context.containerPhases).filter(([id]) => id !== event.id));
      enqueue.assign({ containerIds: context.containerIds.filter((c) => c !== event.id), containerPhases: phases });
    }),
    recordContainerState: assign(({ event, context }) => {
      if (event.type !== 'CONTAINER_STATE' || !context.containerIds.includes(event.id)) return {};
      return { containerPhases: { ...context.containerPhases, [event.id]: { phase: event.phase, error: event.error } } };
    }),
    tellContainersReady: enqueueActions(({ enqueue, context }) => {
      for (const id of context.containerIds) enqueue.sendTo(`container:${id}`, { type: 'POD_READY', ready: true });
    }),
    tellContainersNotReady: enqueueActions(({ enqueue, context }) => {
      for (const id of context.containerIds) enqueue.sendTo(`container:${id}`, { type: 'POD_READY', ready: false });
    }),
    // STOP (no grace) to every container whose process runs; marked busy until it reports back.
    stopRunningContainers: enqueueActions(({ enqueue, context }) => {
      const phases = { ...context.containerPhases };
      for (const id of context.containerIds) {
        if (phases[id]?.phase !== 'running') continue;
        enqueue.sendTo(`container:${id}`, { type: 'STOP', timeoutSec: 0 });
        phases[id] = { phase: 'busy', error: null };
      }
      enqueue.assign({ containerPhases: phases });
    }),
    // REMOVE to every container not busy (a failed removal is retried once per pod removal).
    removeContainers: enqueueActions(({ enqueue, context, event }) => {
      const phases = { ...context.containerPhases };
      const reported = event.type === 'CONTAINER_STATE' ? [event.id] : context.containerIds;
      for (const id of reported) {
        const phase = phases[id]?.phase ?? 'idle';
        if (phase === 'busy' || (event.type === 'CONTAINER_STATE' && phase === 'failed')) continue;
        enqueue.sendTo(`container:${id}`, { type: 'REMOVE' });
        phases[id] = { phase: 'busy', error: null };
      }
      enqueue.assign({ containerPhases: phases });
    }),
    noteContainersLeft: assign(({ context }) => {
      const left = context.containerIds.map((id) => `${id} (${context.containerPhases[id]?.phase ?? 'idle'})`);
      return { lastError: { code: DEADLINE_EXCEEDED_CODE, message: `containers not stopped within the deadline: ${left.join(', ')}` } };
    }),
    noteRemovalFailed: assign(({ context }) => {
      const failed = context.containerIds.filter((id) => context.containerPhases[id]?.phase === 'failed');
      const left = failed.length > 0 ? failed : context.containerIds;
      const why = left.map((id) => `${id}: ${context.containerPhases[id]?.error ?? `still ${context.containerPhases[id]?.phase ?? 'idle'}`}`);
      return { tornDown: false, lastError: { code: INTERNAL_CODE, message: `container${left.length === 1 ? '' : 's'} could not be removed: ${why.join('; ')}` } };
    }),
    // The intent, persisted before the update's effect runs (restore applies it again).
    recordResourcesRequested: assign(({ event }) => (event.type === 'UPDATE_RESOURCES' ? { resourcesRequested: event.resources } : {})),
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
    containerPhases: input.containerPhases ?? {},
    network: input.network ?? null,
    resources: input.resources ?? null,
    resourcesRequested: input.resourcesRequested ?? null,
  }),
  // A container may leave, and reports, whatever the pod is doing.
  on: {
    CONTAINER_REMOVED: { actions: 'forgetContainer' },
    CONTAINER_STATE: { actions: 'recordContainerState' },
  },
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
      tags: ['busy'],
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
              actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })),
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
                lastError: {
                  code: INTERNAL_CODE,
                  message: `${context.lastError?.message ?? 'creation interrupted'}; rollback failed: ${lastErrorOf(event.error).message}`,
                },
              })),
            },
          },
        },
      },
    },
    RUNNING: {
      tags: ['ready'],
      entry: 'tellContainersReady',
      on: {
        // A container can be created only in a ready pod.
        ADD_CONTAINER: { actions: ['addContainer', 'tellNewContainerReady'] },
        READY: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        // Told on the way out, not on RUNNING's exit: UPDATING is a ready state too.
        EXIT: { target: 'STOPPED', actions: ['tellContainersNotReady', 'recordExit'] },
        STOP: { target: 'STOPPING', actions: ['tellContainersNotReady', 'recordStopTimeout'] },
        REMOVE: { target: 'REMOVING', actions: 'tellContainersNotReady' },
        UPDATE_RESOURCES: { target: 'UPDATING', actions: 'recordResourcesRequested' },
      },
    },
    UPDATING: {
      // Still SANDBOX_READY: its containers run, and new ones may be created meanwhile.
      tags: ['ready', 'busy'],
      on: {
        ADD_CONTAINER: { actions: ['addContainer', 'tellNewContainerReady'] },
        READY: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        EXIT: { target: 'STOPPED', actions: ['tellContainersNotReady', 'recordExit'] },
      },
      invoke: {
        id: 'updatePodResources',
        src: 'updatePodResources',
        input: ({ context }) => context,
        onDone: {
          target: 'RUNNING',
          actions: assign(({ event }) => ({ resources: event.output, resourcesRequested: null, lastError: null })),
        },
        onError: {
          target: 'RUNNING',
          actions: assign(({ event }) => ({ resourcesRequested: null, lastError: lastErrorOf(event.error) })),
        },
      },
    },
    STOPPING: {
      tags: ['busy'],
      on: {
        STOP: { actions: 'accept' }, // joins the stop in flight
        READY: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        EXIT: { actions: 'recordExit' },
      },
      initial: 'containers',
      states: {
        containers: {
          entry: 'stopRunningContainers',
          always: { guard: 'containersStopped', target: 'pause' },
          on: { CONTAINER_STATE: { actions: ['recordContainerState', 'stopRunningContainers'] } },
          after: { containerStopDeadline: { target: 'pause', actions: 'noteContainersLeft' } },
        },
        pause: {
          invoke: {
            id: 'stopSandbox',
            src: 'stopSandbox',
            input: ({ context }) => context,
            onDone: {
              target: '#sandbox.STOPPED',
              actions: assign(({ event, context }) => ({
                exit: event.output.exit ?? context.exit,
                tornDown: true,
                lastError: null,
              })),
            },
            onError: {
              target: '#sandbox.STOPPED',
              actions: assign(({ event }) => ({ tornDown: false, lastError: lastErrorOf(event.error) })),
            },
          },
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
      tags: ['busy'],
      on: {
        READY: { actions: 'accept' },
        EXIT: { actions: 'accept' },
        PENDING: { actions: 'accept' },
        REMOVE: { actions: 'accept' }, // joins the removal in flight (rule 3)
      },
      initial: 'containers',
      states: {
        containers: {
          entry: 'removeContainers',
          always: [
            { guard: 'containersRemoved', target: 'pod' },
            { guard: 'containerRemovalFailed', target: '#sandbox.STOPPED', actions: 'noteRemovalFailed' },
          ],
          on: { CONTAINER_STATE: { actions: ['recordContainerState', 'removeContainers'] } },
          after: { containerRemoveDeadline: { target: '#sandbox.STOPPED', actions: 'noteRemovalFailed' } },
        },
        pod: {
          invoke: {
            id: 'removeSandbox',
            src: 'removeSandbox',
            input: ({ context }) => context,
            onDone: '#sandbox.removed',
            onError: {
              target: '#sandbox.STOPPED',
              actions: assign(({ event }) => ({ tornDown: false, lastError: lastErrorOf(event.error) })),
            },
          },
        },
      },
    },
    removed: { type: 'final' },
  },
});

export type SandboxMachine = typeof sandboxMachine;
/** Every state of the chart, by its path ("STOPPING.pause"; machines/state-path.ts). */
export type SandboxStatePath = StatePath<SnapshotFrom<typeof sandboxMachine>['value']>;
/** The top-level state names, as CRI and the inspector see them. */
export type SandboxStateName = TopState<SandboxStatePath>;
