/**
 * The container statechart (seeds 001, 002), supervised by its pod's sandbox actor.
 *
 *            CREATE              (done)           START             (done)
 *  UNKNOWN ────────▶ CREATING ────────▶ CREATED ───────▶ STARTING ────────▶ RUNNING ──STOP──▶ STOPPING
 *     │                 │ (error)          │                 │ (error)        │ EXIT             │
 *     │                 ▼                  │                 ▼                ▼                  ▼
 *     │              REMOVING ◀──REMOVE────┴──────────────  EXITED ◀─────────────────────────────┘
 *     │                 │                                     │ REMOVE
 *     │                 ▼                                     ▼
 *     └─REMOVE/ABANDON─▶ REMOVING ─────────────────────────▶ removed (final)
 *                        │    ▲
 *                (error) ▼    │ REMOVE (retry)
 *                     REMOVE_FAILED
 *
 * RUNNING ──CONMON_LOST──▶ LOST: conmon died with the process alive, so no exit file will come
 * and its output is no longer logged; CRI sees CONTAINER_UNKNOWN with the reason, and STOP or
 * REMOVE kill the process directly (runc kill; its death is polled) [issue 12 item 5].
 *
 * UNKNOWN is where every actor starts, and where a restored container stays while the runtime
 * cannot say what it is: a new container gets CREATE; a restored one gets what was observed
 * (OBSERVED_CREATED, OBSERVED_RUNNING, EXIT; ABANDON when it was caught half-created).
 * CRI's idempotent calls are accepted no-ops (STOP when not running), so a refusal is a real
 * conflict. REMOVE of a running container is forced: REMOVING kills it first.
 *
 * A REMOVE sent while REMOVING joins the removal in flight (CRI: RemoveContainer is idempotent;
 * containerd and CRI-O make a second caller wait for the first): both callers see one outcome.
 * A removal that fails goes to REMOVE_FAILED with lastError, never to EXITED: the kill may not
 * have happened, so no exit is made up. Only an exit observed (conmon's exit file, an EXIT event)
 * is recorded there. The next REMOVE retries.
 */
import { assign, fromPromise, sendParent, setup, type SnapshotFrom } from 'xstate';
import type { StatePath } from './state-path.js';
import type { ContainerContext, ContainerEvent, ContainerExit, ContainerInput, ContainerPhase, Started } from './container.types.js';
import { INTERNAL_CODE, lastErrorOf } from './last-error.js';

export type { ContainerContext, ContainerEvent, ContainerInput } from './container.types.js';

/**
 * Tags: `busy` (an effect is in flight), `processMayRun` (the process may be alive: its exit is
 * watched), and the CRI state each state is to kubelet. REMOVE_FAILED has no CRI tag: it is
 * EXITED when an exit was observed and UNKNOWN when the process may still run (criContainerState).
 */
export type CriContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type ContainerTag = 'busy' | 'processMayRun' | CriContainerState;

function effect<Out>(name: string) {
  return fromPromise<Out, ContainerContext>(() => Promise.reject(new Error(`effect not provided: ${name}`)));
}


/** Exit code kubelet and containerd report when a container never started. */
export const START_ERROR_EXIT_CODE = 128;

export const containerMachine = setup({
  types: {
    context: {} as ContainerContext,
    events: {} as ContainerEvent,
    input: {} as ContainerInput,
    tags: {} as ContainerTag,
  },
  actors: {
    createContainer: effect<void>('createContainer'),
    startContainer: effect<Started>('startContainer'),
    stopContainer: effect<ContainerExit | null>('stopContainer'),
    removeContainer: effect<void>('removeContainer'),
    updateContainer: fromPromise<Record<string, unknown>, { context: ContainerContext; resources: Record<string, unknown> }>(() =>
      Promise.reject(new Error('effect not provided: updateContainer')),
    ),
  },
  guards: {
    hasExited: ({ context }) => context.exit !== null,
    podReady: ({ context }) => context.podReady,
  },
  actions: {
    // An accepted event that changes nothing (CRI's idempotent calls); see sandbox.machine.ts.
    accept: () => undefined,
    recordExit: assign(({ event, context }) => (event.type === 'EXIT' ? { exit: event.exit } : { exit: context.exit })),
    recordRunning: assign(({ event }) =>
      event.type === 'OBSERVED_RUNNING' ? { pid: event.pid, pidStartTime: event.pidStartTime } : {},
    ),
    recordConmonLost: assign(({ event, context }) => (event.type === 'CONMON_LOST' ? { lastError: { code: INTERNAL_CODE, message: event.message } } : { lastError: context.lastError })),
    recordStopTimeout: assign(({ event }) => (event.type === 'STOP' ? { stopTimeoutSec: event.timeoutSec } : {})),
    tellPodRemoved: sendParent(({ context }) => ({ type: 'CONTAINER_REMOVED', id: context.id })),
    // Each state says what it means to the pod, whose stop and removal wait on it.
    tellPod: sendParent(({ context }, params: { phase: ContainerPhase }) => ({ type: 'CONTAINER_STATE', id: context.id, phase: params.phase, error: context.lastError?.message ?? null })),
    recordPodReady: assign(({ event, context }) => ({ podReady: event.type === 'POD_READY' ? event.ready : context.podReady })),
  },
}).createMachine({
  id: 'container',
  initial: 'UNKNOWN',
  context: ({ input }) => ({
    id: input.id,
    spec: input.spec,
    pid: input.pid ?? null,
    pidStartTime: input.pidStartTime ?? null,
    startedAt: input.startedAt ?? null,
    exit: input.exit ?? null,
    stopTimeoutSec: input.stopTimeoutSec ?? 10,
    lastError: input.lastError ?? null,
    resources: input.resources ?? null,
    podReady: input.podReady ?? false,
  }),
  // The pod says whether it is RUNNING in any state: START waits for it (issue 13, item 1).
  on: { POD_READY: { actions: 'recordPodReady' } },
  states: {
    UNKNOWN: {
      entry: { type: 'tellPod', params: { phase: 'idle' } }, tags: ['CONTAINER_UNKNOWN'],
      on: {
        CREATE: 'CREATING',
        OBSERVED_CREATED: 'CREATED',
        OBSERVED_RUNNING: { target: 'RUNNING', actions: 'recordRunning' },
        EXIT: { target: 'EXITED', actions: 'recordExit' },
        ABANDON: 'REMOVING',
        REMOVE: 'REMOVING',
      },
    },
    CREATING: {
      entry: { type: 'tellPod', params: { phase: 'busy' } }, tags: ['CONTAINER_CREATED', 'busy'],
      invoke: {
        id: 'createContainer',
        src: 'createContainer',
        input: ({ context }) => context,
        onDone: 'CREATED',
        // Roll back whatever was made; the error stays in context for the CRI reply.
        onError: { target: 'REMOVING', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
      },
    },
    CREATED: {
      entry: { type: 'tellPod', params: { phase: 'idle' } }, tags: ['CONTAINER_CREATED'],
      on: {
        START: { guard: 'podReady', target: 'STARTING' },
        STOP: { actions: 'accept' },
        REMOVE: 'REMOVING',
      },
    },
    STARTING: {
      entry: { type: 'tellPod', params: { phase: 'busy' } }, tags: ['CONTAINER_CREATED', 'busy', 'processMayRun'],
      on: { EXIT: { actions: 'recordExit' } },
      invoke: {
        id: 'startContainer',
        src: 'startContainer',
        input: ({ context }) => context,
        onDone: [
          // The process was quick: its exit came in before the start effect returned.
          {
            guard: 'hasExited',
            target: 'EXITED',
            actions: assign(({ event }) => ({ ...event.output, lastError: null })),
          },
          { target: 'RUNNING', actions: assign(({ event }) => ({ ...event.output, lastError: null })) },
        ],
        onError: {
          target: 'EXITED',
          actions: assign(({ event, context }) => ({
            lastError: lastErrorOf(event.error),
            exit: context.exit ?? {
              code: START_ERROR_EXIT_CODE,
              at: context.spec.createdAt,
              reason: 'StartError',
              message: lastErrorOf(event.error).message,
            },
          })),
        },
      },
    },
    RUNNING: {
      entry: { type: 'tellPod', params: { phase: 'running' } }, tags: ['CONTAINER_RUNNING', 'processMayRun'],
      on: {
        STOP: { target: 'STOPPING', actions: 'recordStopTimeout' },
        EXIT: { target: 'EXITED', actions: 'recordExit' },
        REMOVE: 'REMOVING',
        UPDATE: 'UPDATING',
        OBSERVED_RUNNING: { actions: 'accept' },
        CONMON_LOST: { target: 'LOST', actions: 'recordConmonLost' },
      },
    },
    LOST: {
      entry: { type: 'tellPod', params: { phase: 'running' } }, tags: ['CONTAINER_UNKNOWN', 'processMayRun'],
      on: {
        STOP: { target: 'STOPPING', actions: 'recordStopTimeout' },
        EXIT: { target: 'EXITED', actions: 'recordExit' },
        REMOVE: 'REMOVING',
        CONMON_LOST: { actions: 'accept' },
      },
    },
    UPDATING: {
      entry: { type: 'tellPod', params: { phase: 'busy' } }, tags: ['CONTAINER_RUNNING', 'busy', 'processMayRun'],
      on: { EXIT: { actions: 'recordExit' } },
      invoke: {
        id: 'updateContainer',
        src: 'updateContainer',
        input: ({ context, event }) => ({ context, resources: event.type === 'UPDATE' ? event.resources : {} }),
        onDone: [
          { guard: 'hasExited', target: 'EXITED' },
          {
            target: 'RUNNING',
            actions: assign(({ event }) => ({ resources: event.output, lastError: null })),
          },
        ],
        onError: [
          { guard: 'hasExited', target: 'EXITED', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
          { target: 'RUNNING', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
        ],
      },
    },
    STOPPING: {
      entry: { type: 'tellPod', params: { phase: 'busy' } }, tags: ['CONTAINER_RUNNING', 'busy', 'processMayRun'],
      on: {
        STOP: { actions: 'accept' }, // joins the stop in flight
        EXIT: { actions: 'recordExit' },
      },
      invoke: {
        id: 'stopContainer',
        src: 'stopContainer',
        input: ({ context }) => context,
        onDone: {
          target: 'EXITED',
          actions: assign(({ event, context }) => ({ exit: context.exit ?? event.output, lastError: null })),
        },
        onError: [
          { guard: 'hasExited', target: 'EXITED', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
          { target: 'RUNNING', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
        ],
      },
    },
    EXITED: {
      entry: { type: 'tellPod', params: { phase: 'idle' } }, tags: ['CONTAINER_EXITED'],
      on: {
        STOP: { actions: 'accept' },
        EXIT: { actions: 'accept' },
        REMOVE: 'REMOVING',
      },
    },
    REMOVING: {
      entry: { type: 'tellPod', params: { phase: 'busy' } }, tags: ['CONTAINER_EXITED', 'busy', 'processMayRun'],
      on: {
        EXIT: { actions: 'recordExit' },
        REMOVE: { actions: 'accept' }, // joins the removal in flight
      },
      invoke: {
        id: 'removeContainer',
        src: 'removeContainer',
        input: ({ context }) => context,
        onDone: 'removed',
        // Not EXITED: the process may still run, and its exit was not observed.
        onError: { target: 'REMOVE_FAILED', actions: assign(({ event }) => ({ lastError: lastErrorOf(event.error) })) },
      },
    },
    REMOVE_FAILED: {
      entry: { type: 'tellPod', params: { phase: 'failed' } }, tags: ['processMayRun'],
      on: {
        REMOVE: 'REMOVING',
        // The first exit observed is the one reported; an exit file read again changes nothing.
        EXIT: [{ guard: 'hasExited', actions: 'accept' }, { actions: 'recordExit' }],
        // Stop is a no-op only once the process is known to have ended; else a real conflict.
        STOP: { guard: 'hasExited', actions: 'accept' },
      },
    },
    removed: { type: 'final', entry: 'tellPodRemoved' },
  },
});

export type ContainerMachine = typeof containerMachine;

/** Every state of the chart, by its path (machines/state-path.ts). */
export type ContainerStatePath = StatePath<SnapshotFrom<typeof containerMachine>['value']>;
