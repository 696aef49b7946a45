/**
 * Removed actors' history is kept for removedHistoryRetentionSeconds, then dropped (issue 12,
 * item 8). One timer for the whole daemon, unref'd (it never keeps the process alive), firing at
 * most once a minute and at least twice per retention period, so a row outlives its retention by
 * at most about half of it; a sweep also runs at start, for what a stopped daemon kept past its
 * time. A failed sweep (a full disk) is logged and retried at the next tick: nothing is lost by
 * keeping history a while longer.
 */
import type { Logger } from 'pino';
import type { Store } from '../storage/store.js';

export interface HistorySweepOptions {
  store: Pick<Store, 'sweepRemovedHistory'>;
  retentionSeconds: number;
  logger: Logger;
  /** The clock, in ms since the epoch (tests pass their own). */
  now?: () => number;
}

export const MAX_SWEEP_INTERVAL_MS = 60_000;
const MIN_SWEEP_INTERVAL_MS = 1_000;

export class HistorySweep {
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly options: HistorySweepOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The sweep's period: half the retention, within [1 s, 1 min]. */
  get intervalMs(): number {
    const half = (this.options.retentionSeconds * 1000) / 2;
    return Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, half));
  }

  /** Drops what is due now; returns how many actors' history went. */
  sweep(): number {
    try {
      const dropped = this.options.store.sweepRemovedHistory(this.now() - this.options.retentionSeconds * 1000);
      if (dropped > 0) this.options.logger.debug({ actors: dropped }, 'history of removed actors dropped');
      return dropped;
    } catch (err) {
      this.options.logger.warn({ err }, 'sweeping removed actors\' history failed; retried at the next tick');
      return 0;
    }
  }

  start(): void {
    if (this.timer) return;
    this.sweep();
    this.timer = setInterval(() => this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
