/**
 * "Why is this pod NotReady?" (issue 15, item 2): a plain-language account of an actor's state,
 * built from its persisted context and history alone, so the inspector page and `podchart explain`
 * (which reads the database while the daemon is down) tell the same story. Pure: the caller gives
 * the state, the context (possibly partial: a row this version could not fully read) and the
 * history, oldest first.
 */
import { topState } from '../machines/state-path.js';
import type { ContainerContext } from '../machines/container.types.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import type { Transition } from '../storage/store.js';

export interface Explanation {
  /** One line: what the actor is doing, since when, and why. */
  summary: string;
  /** What else an operator needs: the process, the network, the last error, what it waits for. */
  details: string[];
}

/** "2026-12-07 18:32:11 UTC". */
export function clock(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A nanosecond decimal string (an exit's `at`) as milliseconds, or null. */
function nsToMs(ns: string | undefined): number | null {
  return ns && /^\d+$/.test(ns) ? Number(BigInt(ns) / 1_000_000n) : null;
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

/** What an exit code says: 137 is a SIGKILL, which the OOM killer sends too. */
export function exitMeaning(code: number, stopped = false): string {
  if (code === 0) return 'exit code 0 (success)';
  if (code > 128 && code < 160) {
    const signal = code - 128;
    const name = SIGNALS[signal] ?? `signal ${signal}`;
    return `exit code ${code} (${name}${signal === 9 && !stopped ? ': OOM-killed, or killed by someone' : ''})`;
  }
  return `exit code ${code}`;
}

/** Who set a transition off, as a phrase: "by StopPodSandbox (call #12)". */
export function causePhrase(cause: string | null | undefined): string {
  if (!cause) return '';
  if (cause === 'restore') return 'by the restore after a daemon restart';
  if (cause === 'exit') return 'when its process exited';
  const call = /^([A-Za-z]+)#(\d+)$/.exec(cause);
  if (call) return `by ${call[1]} (call #${call[2]})`;
  return `by ${cause}`;
}

const withCause = (t: Transition | undefined): string => {
  const phrase = causePhrase(t?.cause);
  return phrase ? ` ${phrase}` : '';
};

/** The latest transition into the current state (its top-level state, for a compound one). */
function enteredAt(history: readonly Transition[], state: string): Transition | undefined {
  const top = topState(state);
  for (let i = history.length - 1; i >= 0; i--) {
    const t = history[i];
    if (t && topState(t.to) === top && (t.from === null || topState(t.from) !== top)) return t;
  }
  return undefined;
}

/** The latest restore decision, when it is the newest row of the history. */
function restoredAs(history: readonly Transition[]): Transition | undefined {
  const last = history.at(-1);
  return last?.cause === 'restore' ? last : undefined;
}

const sinceText = (t: Transition | undefined): string => (t ? ` since ${clock(t.at)}` : '');

function lastErrorLine(error: { message: string } | null | undefined, retry: string): string[] {
  return error ? [`last error: ${error.message}${retry ? ` (${retry})` : ''}`] : [];
}

/** A pod's ready states: RUNNING, and UPDATING (its resources being written) in between. */
const READY_STATES: ReadonlySet<string> = new Set(['RUNNING', 'UPDATING']);
const isReady = (state: string | null): boolean => state !== null && READY_STATES.has(topState(state));

/** When the pod last became ready: an update's return to RUNNING does not count. */
function becameReady(history: readonly Transition[]): Transition | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const t = history[i];
    if (t && isReady(t.to) && !isReady(t.from)) return t;
  }
  return undefined;
}

/** The pod's resources as UpdatePodSandboxResources last set them: the limits given, in words. */
function resourcesLine(ctx: Partial<SandboxContext>): string[] {
  const r = ctx.resources?.resources;
  if (!r) return [];
  const set = Object.entries(r).filter(([, v]) => typeof v === 'string' && v !== '' && v !== '0').map(([k, v]) => `${k} ${String(v)}`);
  return set.length ? [`resources (UpdatePodSandboxResources): ${set.join(', ')}${ctx.resources?.overhead ? ', plus its overhead' : ''}`] : [];
}

export function explainSandbox(state: string, ctx: Partial<SandboxContext>, history: readonly Transition[]): Explanation {
  const top = topState(state);
  const entered = top === 'RUNNING' ? becameReady(history) : enteredAt(history, state);
  const pause = ctx.spec?.pauseProcess === false ? null : ctx.pid ?? null;
  const processLine = ctx.spec?.pauseProcess === false
    ? 'no pause process: its namespaces are pinned by bind mounts'
    : pause !== null ? `pause process: pid ${pause}` : 'pause process: none recorded';
  const ip = ctx.network?.ip ? [`network: ${ctx.network.ip}`] : [];
  switch (top) {
    case 'UNKNOWN':
      return { summary: 'Not restored yet: the daemon restores it from its last committed state at start', details: [] };
    case 'PENDING':
      if (state === 'PENDING.rollingBack') {
        const failed = [...history].reverse().find((t) => t.to === state);
        return { summary: `Its creation failed${failed ? ` at ${clock(failed.at)}` : ''}: what it made is being removed`, details: lastErrorLine(ctx.lastError, '') };
      }
      return { summary: `Being created${sinceText(entered)}${withCause(entered)}`, details: [] };
    case 'UPDATING':
      return { summary: `Ready; its resources are being written to its cgroup${sinceText(enteredAt(history, state))}${withCause(enteredAt(history, state))}`, details: [processLine, ...ip] };
    case 'RUNNING': {
      const restored = restoredAs(history);
      const details = [processLine, ...ip, ...resourcesLine(ctx), ...lastErrorLine(ctx.lastError, '')];
      if (restored) {
        details.push(pause !== null
          ? `restored as RUNNING at ${clock(restored.at)}: pause pid ${pause} alive with its recorded start time`
          : `restored as RUNNING at ${clock(restored.at)}: its pinned namespaces are still mounted`);
      }
      return { summary: `Ready${sinceText(entered)}${withCause(entered)}`, details };
    }
    case 'STOPPING': {
      const step = state === 'STOPPING.containers' ? 'stopping its containers' : 'stopping the pause process and tearing down its network';
      return { summary: `Stopping${sinceText(entered)}${withCause(entered)}: ${step}`, details: lastErrorLine(ctx.lastError, '') };
    }
    case 'STOPPED': {
      const left = leftReady(history);
      const why = left?.event === 'EXIT'
        ? `the pause process exited with ${exitMeaning(ctx.exit?.code ?? -1)}`
        : left ? `stopped${withCause(left)}` : 'stopped';
      const torn = ctx.spec?.pauseProcess === false
        ? 'network torn down: CNI DEL done, netns, namespace pins and /dev/shm unmounted'
        : 'network torn down: the pause container deleted, CNI DEL done, netns and /dev/shm unmounted';
      const details = ctx.tornDown
        ? [torn, 'waiting for RemovePodSandbox']
        : ['network still set up: StopPodSandbox tears it down', 'waiting for StopPodSandbox'];
      // A stop's own exit of the pause is news too, when the summary tells another reason.
      const exitAt = nsToMs(ctx.exit?.at);
      const exit = ctx.exit && left?.event !== 'EXIT' && ctx.spec?.pauseProcess !== false
        ? [`the pause process ${left ? 'was stopped and exited' : 'exited'} with ${exitMeaning(ctx.exit.code, left !== undefined)}${exitAt === null ? '' : ` at ${clock(exitAt)}`}`]
        : [];
      return { summary: `NotReady${left ? ` since ${clock(left.at)}` : ''}: ${why}`, details: [...exit, ...details, ...lastErrorLine(ctx.lastError, 'StopPodSandbox retries it')] };
    }
    case 'REMOVING':
      return { summary: `Being removed${sinceText(entered)}${withCause(entered)}`, details: lastErrorLine(ctx.lastError, 'RemovePodSandbox retries it') };
    default:
      return removedOr(state, history);
  }
}

/** The transition that took a pod out of RUNNING last (its pause's exit, or a stop). */
function leftReady(history: readonly Transition[]): Transition | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const t = history[i];
    if (t?.from && isReady(t.from) && !isReady(t.to)) return t;
  }
  return undefined;
}

export function explainContainer(state: string, ctx: Partial<ContainerContext>, history: readonly Transition[]): Explanation {
  const top = topState(state);
  const entered = enteredAt(history, state);
  switch (top) {
    case 'UNKNOWN':
      return { summary: 'Not restored yet: the daemon restores it from its last committed state at start', details: [] };
    case 'CREATING':
      return { summary: `Being created${sinceText(entered)}${withCause(entered)}`, details: [] };
    case 'CREATED':
      return { summary: `Created${entered ? ` at ${clock(entered.at)}` : ''}${withCause(entered)}`, details: ['waiting for StartContainer'] };
    case 'STARTING':
      return { summary: `Starting${sinceText(entered)}${withCause(entered)}`, details: [] };
    case 'RUNNING':
    case 'UPDATING':
    case 'LOST': {
      const restored = restoredAs(history);
      const details = [ctx.pid != null ? `process: pid ${ctx.pid}` : 'process: pid not recorded'];
      if (top === 'UPDATING') details.push('its resources are being updated (UpdateContainerResources)');
      if (top === 'LOST') details.push('its conmon is gone: its output is no longer logged, and its exit code will not be known');
      if (restored && ctx.pid != null) details.push(`restored as ${restored.to} at ${clock(restored.at)}: pid ${ctx.pid} alive with its recorded start time`);
      return { summary: `Running${sinceText(enteredAt(history, 'RUNNING') ?? entered)}`, details: [...details, ...lastErrorLine(ctx.lastError, '')] };
    }
    case 'STOPPING':
      return { summary: `Stopping${sinceText(entered)}${withCause(entered)}`, details: lastErrorLine(ctx.lastError, '') };
    case 'EXITED': {
      const exit = ctx.exit;
      const at = nsToMs(exit?.at) ?? entered?.at ?? null;
      const how = entered?.cause && entered.cause !== 'exit' ? ` (stopped${withCause(entered)})` : '';
      const what = exit ? `with ${exitMeaning(exit.code)}, reason ${exit.reason}` : 'with no exit code recorded';
      const details = [...(exit?.message ? [`message: ${exit.message}`] : []), 'waiting for RemoveContainer: a container is never restarted', ...lastErrorLine(ctx.lastError, '')];
      return { summary: `Exited${at === null ? '' : ` at ${clock(at)}`} ${what}${how}`, details };
    }
    case 'REMOVING':
      return { summary: `Being removed${sinceText(entered)}${withCause(entered)}`, details: [] };
    case 'REMOVE_FAILED':
      return { summary: `Its removal failed${entered ? ` at ${clock(entered.at)}` : ''}`, details: lastErrorLine(ctx.lastError, 'RemoveContainer retries it') };
    default:
      return removedOr(state, history);
  }
}

/** The states a creation runs in: leaving one with an error is a failed creation. */
const CREATION_STATES = new Set(['PENDING.creating', 'CREATING']);

function removedOr(state: string, history: readonly Transition[]): Explanation {
  const last = history.at(-1);
  if (state === 'removed' || last?.to === 'removed') {
    const kept = 'only its history is kept, for removedHistoryRetentionSeconds';
    // A pod or container that never came up (a CNI ADD or runc failure): what failed, not only
    // that it is gone, since nothing else on the node remembers it.
    const failed = history.find((t) => t.error && t.from !== null && CREATION_STATES.has(t.from));
    if (failed && last) {
      return { summary: `Its creation failed at ${clock(failed.at)}${withCause(failed)}, and it was rolled back: removed at ${clock(last.at)}`, details: [`error: ${failed.error}`, kept] };
    }
    return { summary: `Removed${last ? ` at ${clock(last.at)}${withCause(last)}` : ''}`, details: [kept] };
  }
  return { summary: `In state ${state}`, details: [] };
}

/** Either kind, by the kind's name. */
export function explain(kind: 'sandbox' | 'container', state: string, context: unknown, history: readonly Transition[]): Explanation {
  const ctx = (typeof context === 'object' && context !== null ? context : {}) as Partial<SandboxContext> & Partial<ContainerContext>;
  return kind === 'sandbox' ? explainSandbox(state, ctx, history) : explainContainer(state, ctx, history);
}
