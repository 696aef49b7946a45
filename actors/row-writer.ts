/**
 * Writes actor rows in group commits, and holds what the database would not take (issue 12,
 * item 1).
 *
 * Group commit (issue 14, item 3): a row is not written at once but at the end of the current
 * turn of the event loop, with every other row saved in that turn, in one transaction: one fsync
 * for all of them. Under load that turns dozens of commits into one; alone, a transition waits
 * one turn. Nothing acts on a row before its commit: effects wait on `committed`, and the CRI
 * reply on `flushed`, so the intent is still on disk before its effect and its reply.
 *
 * A transition is already taken in memory when the supervisor learns of it (XState's inspection
 * callback), so a failed write cannot undo it. What it must not do is let the transition's effect
 * act on a state that is not on disk: the row is held here, every effect waits for its actor's
 * rows to be committed (`committed`), and a retry writes the held rows, in order, once the
 * database takes writes again. Meanwhile the supervisor refuses new work with UNAVAILABLE and
 * Status reports RuntimeReady=false. A crash while rows are held restores the last committed
 * state, and since no effect of a held state ran, the host still matches it.
 */
import type { Logger } from 'pino';
import type { ActorKind, Store, Transition } from '../storage/store.js';
import { StoreWriteFailed } from '../storage/store.js';
import { stepStarted } from '../host/steps.js';

/** What is held for one actor: its latest row (or its removal) and the transitions before it. */
interface Held {
  kind: ActorKind;
  id: string;
  row: { state: string; context: unknown } | null;
  transitions: Transition[];
  removal: { final: Transition; at: number } | null;
}

export interface PersistOptions {
  store: Store;
  logger: Logger;
  /** How often held rows are retried while the database refuses writes. */
  retryMs?: number;
}

const DEFAULT_RETRY_MS = 1000;

export class RowWriter {
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly retryMs: number;
  /** Per actor key, in the order the actors were first held (a pod before its containers' removal). */
  private readonly held = new Map<string, Held>();
  /** Saved this turn, not yet written: the next group commit's rows. */
  private pending = new Map<string, Held>();
  private flushScheduled = false;
  private waiters: (() => void)[] = [];
  private retry: NodeJS.Timeout | null = null;

  constructor(options: PersistOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  }

  /**
   * Why the database does not take writes, or null. While it is set the daemon is not ready: a
   * held row, or a failed write with none held (a refused insert or image row) until a probe
   * write succeeds; such a failure is noticed here, and the retry armed for it.
   */
  failure(): string | null {
    const failed = this.store.writeFailure;
    if (failed) {
      this.armRetry();
      return failed.reason;
    }
    return this.held.size > 0 ? 'rows are still waiting to be written' : null;
  }

  /** Saves an actor's row and the transition that led there, in this turn's group commit. */
  save(kind: ActorKind, id: string, state: string, context: unknown, transition: Transition | null): void {
    const entry = this.entry(kind, id);
    entry.row = { state, context };
    if (transition) entry.transitions.push(transition);
  }

  /** Deletes a removed actor's row (its history stays, ending with `final`), in this turn's commit. */
  remove(kind: ActorKind, id: string, final: Transition, at: number): void {
    this.entry(kind, id).removal = { final, at };
  }

  /** Where a row goes: behind the actor's held rows, or into this turn's batch. */
  private entry(kind: ActorKind, id: string): Held {
    const key = `${kind}:${id}`;
    const existing = this.held.get(key) ?? this.pending.get(key);
    if (existing) return existing;
    const entry: Held = { kind, id, row: null, transitions: [], removal: null };
    this.pending.set(key, entry);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After this turn's I/O callbacks, whose transitions then share the commit.
      setImmediate(() => this.commitPending());
    }
    return entry;
  }

  /** Resolves once this turn's rows of the actor were written, or held (then `failure()` says so). */
  flushed(key: string): Promise<void> {
    if (!this.pending.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.pending.has(key)) this.waiters.push(check);
        else resolve();
      };
      check();
    });
  }

  /** Writes this turn's batch in one transaction; what the database refuses is held. */
  commitPending(): void {
    this.flushScheduled = false;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    if (batch.length === 0) return;
    // Timed for each call whose transitions it writes (host/steps.ts): one commit serves them all.
    const causes = new Set(batch.flatMap((entry) => [...entry.transitions, ...(entry.removal ? [entry.removal.final] : [])].map((t) => t.cause ?? null)));
    const stepsDone = [...causes].filter((c) => c !== null).map((cause) => stepStarted('db commit', cause));
    try {
      this.store.write(() => {
        for (const entry of inApplyOrder(batch)) this.apply(entry);
      });
    } catch (err) {
      if (!(err instanceof StoreWriteFailed)) {
        this.applyEach(batch, err);
      } else {
        for (const entry of batch) this.hold(entry, err);
      }
    }
    for (const done of stepsDone) done();
    this.wake();
  }

  /**
   * A batch failed for a reason other than the disk (a bug, a constraint): each row is written
   * on its own, so one bad row cannot take the others with it; the bad one is logged and dropped,
   * since no retry can write it.
   */
  private applyEach(batch: Held[], first: unknown): void {
    this.logger.error({ err: first }, 'a group commit failed: writing its rows one by one');
    for (const entry of inApplyOrder(batch)) {
      try {
        this.store.write(() => this.apply(entry));
      } catch (err) {
        if (err instanceof StoreWriteFailed) this.hold(entry, err);
        else this.logger.error({ err, actor: `${entry.kind}:${entry.id}` }, 'a row could not be written and is dropped');
      }
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves once nothing of this actor is held: its effects run only on a committed state. */
  committed(key: string): Promise<void> {
    if (!this.held.has(key) && !this.pending.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.held.has(key) || this.pending.has(key)) this.waiters.push(check);
        else resolve();
      };
      check();
    });
  }

  /** Writes this turn's rows now and stops retrying (shutdown); held rows are lost with the process, as a crash would lose them. */
  stop(): void {
    this.commitPending();
    this.stopRetry();
  }

  private stopRetry(): void {
    if (this.retry) clearInterval(this.retry);
    this.retry = null;
  }

  private hold(entry: Held, err: StoreWriteFailed): void {
    const key = `${entry.kind}:${entry.id}`;
    const already = this.held.get(key);
    if (already) {
      // Rows of a later batch, behind the ones held before them.
      already.transitions.push(...entry.transitions);
      if (entry.row) already.row = entry.row;
      if (entry.removal) already.removal = entry.removal;
      return;
    }
    if (this.held.size === 0) this.logger.error({ reason: err.reason }, 'the state database refuses writes: new work is refused until it takes them again');
    this.held.set(key, entry);
    this.armRetry();
  }

  private armRetry(): void {
    if (this.retry) return;
    this.retry = setInterval(() => this.flush(), this.retryMs);
    this.retry.unref();
  }

  /** Writes everything held in one transaction, or nothing; a probe when nothing is held. */
  flush(): void {
    try {
      if (this.held.size === 0) this.store.probeWrite();
      else this.store.write(() => {
        for (const entry of inApplyOrder([...this.held.values()])) this.apply(entry);
      });
    } catch (err) {
      if (err instanceof StoreWriteFailed) return; // still refused: the next tick tries again
      throw err;
    }
    const written = this.held.size;
    this.held.clear();
    this.stopRetry();
    this.logger.info({ rows: written }, 'the state database takes writes again: held rows written, new work accepted');
    this.wake();
  }

  private apply(entry: Held): void {
    const { kind, id } = entry;
    if (entry.row) {
      const [last, ...earlier] = [...entry.transitions].reverse();
      for (const t of earlier.reverse()) this.store.insertTransition(t);
      if (kind === 'sandbox') this.store.saveSandbox(id, entry.row.state, entry.row.context, last ?? null);
      else this.store.saveContainer(id, entry.row.state, entry.row.context, last ?? null);
    }
    if (entry.removal) {
      if (kind === 'sandbox') this.store.deleteSandbox(id, entry.removal.final, entry.removal.at);
      else this.store.deleteContainer(id, entry.removal.final, entry.removal.at);
    }
  }
}

/**
 * Rows first, then containers' removals, then pods': a pod's removal deletes its containers'
 * rows, so a container removed in the same batch must have written its own last history row.
 */
function inApplyOrder(batch: Held[]): Held[] {
  const rank = (e: Held): number => (e.removal === null ? 0 : e.kind === 'container' ? 1 : 2);
  return [...batch].sort((a, b) => rank(a) - rank(b));
}
