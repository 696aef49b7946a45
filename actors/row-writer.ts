/**
 * Writes actor rows, and holds what the database would not take (issue 12, item 1).
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

  /** Saves an actor's row and the transition that led there; held when the write fails. */
  save(kind: ActorKind, id: string, state: string, context: unknown, transition: Transition | null): void {
    const key = `${kind}:${id}`;
    const held = this.held.get(key);
    if (held) {
      held.row = { state, context };
      if (transition) held.transitions.push(transition);
      return;
    }
    try {
      if (kind === 'sandbox') this.store.saveSandbox(id, state, context, transition);
      else this.store.saveContainer(id, state, context, transition);
    } catch (err) {
      if (!(err instanceof StoreWriteFailed)) throw err;
      this.hold({ kind, id, row: { state, context }, transitions: transition ? [transition] : [], removal: null }, err);
    }
  }

  /** Deletes a removed actor's row (its history stays, ending with `final`); held when the write fails. */
  remove(kind: ActorKind, id: string, final: Transition, at: number): void {
    const key = `${kind}:${id}`;
    const held = this.held.get(key);
    if (held) {
      held.removal = { final, at };
      return;
    }
    try {
      this.apply({ kind, id, row: null, transitions: [], removal: { final, at } });
    } catch (err) {
      if (!(err instanceof StoreWriteFailed)) throw err;
      this.hold({ kind, id, row: null, transitions: [], removal: { final, at } }, err);
    }
  }

  /** Resolves once nothing of this actor is held: its effects run only on a committed state. */
  committed(key: string): Promise<void> {
    if (!this.held.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.held.has(key)) this.waiters.push(check);
        else resolve();
      };
      check();
    });
  }

  /** Stops retrying (shutdown); held rows are lost with the process, as a crash would lose them. */
  stop(): void {
    if (this.retry) clearInterval(this.retry);
    this.retry = null;
  }

  private hold(entry: Held, err: StoreWriteFailed): void {
    if (this.held.size === 0) this.logger.error({ reason: err.reason }, 'the state database refuses writes: new work is refused until it takes them again');
    this.held.set(`${entry.kind}:${entry.id}`, entry);
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
        for (const entry of this.held.values()) this.apply(entry);
      });
    } catch (err) {
      if (err instanceof StoreWriteFailed) return; // still refused: the next tick tries again
      throw err;
    }
    const written = this.held.size;
    this.held.clear();
    this.stop();
    this.logger.info({ rows: written }, 'the state database takes writes again: held rows written, new work accepted');
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
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
