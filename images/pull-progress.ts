/**
 * A pull's progress (issue 16, item 5): a log line every few seconds while it runs (bytes done and
 * total, per layer and in all, and the rate since the last line), and containerd's
 * image_pull_progress_timeout: when neither downloads nor unpacking move for `timeoutMs`, the pull
 * is cancelled (`signal` aborts: its downloads stop) and fails with DEADLINE_EXCEEDED saying so.
 */
import type { Logger } from 'pino';
import { DeadlineExceeded } from '../errors/catalogue.js';

/** How often a long pull logs its progress. */
export const PROGRESS_EVERY_MS = 2_000;

const MB = 1_000_000;
const mb = (bytes: number): string => (bytes / MB).toFixed(1);
/** The digest's first 12 hex digits, as tools show a layer. */
const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

interface LayerProgress {
  digest: string;
  total: number;
  bytes: number;
  done: boolean;
}

export class PullProgress {
  private readonly layers: LayerProgress[];
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private lastMoveAt = Date.now();
  private lastReport = { at: Date.now(), bytes: 0 };
  private stalledError: DeadlineExceeded | null = null;

  constructor(
    private readonly log: Logger,
    private readonly image: string,
    layers: readonly { digest: string; size: number }[],
    private readonly timeoutMs: number,
  ) {
    this.layers = layers.map((l) => ({ digest: l.digest, total: l.size, bytes: 0, done: false }));
    // The timeout is checked more often than the log is written when it is short (a test's).
    const every = timeoutMs > 0 ? Math.min(PROGRESS_EVERY_MS, Math.max(50, Math.floor(timeoutMs / 4))) : PROGRESS_EVERY_MS;
    let sinceReport = 0;
    this.timer = setInterval(() => {
      this.checkStalled();
      sinceReport += every;
      if (sinceReport >= PROGRESS_EVERY_MS) {
        sinceReport = 0;
        this.report();
      }
    }, every);
    this.timer.unref();
  }

  /** Aborted when the pull stalls: downloads given it stop. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** A layer's bytes downloaded so far (its running total). */
  downloaded(digest: string, bytes: number): void {
    const layer = this.layers.find((l) => l.digest === digest);
    if (!layer || bytes <= layer.bytes) return;
    layer.bytes = bytes;
    this.lastMoveAt = Date.now();
  }

  /** Progress that is not a layer's download: the config's, or bytes unpacked. */
  moved(): void {
    this.lastMoveAt = Date.now();
  }

  layerDone(digest: string): void {
    const layer = this.layers.find((l) => l.digest === digest);
    if (layer) layer.done = true;
    this.lastMoveAt = Date.now();
    this.log.debug({ layer: digest, layersDone: this.layers.filter((l) => l.done).length, layers: this.layers.length }, 'layer ready');
  }

  /**
   * The error to fail the pull with: its stall, when the pull stalled (whatever error the aborted
   * download then gave), else `err` as it is.
   */
  failure(err: unknown): unknown {
    return this.stalledError ?? err;
  }

  /** Ends the report and the watch (a failed pull too: a leaked timer would log "pulling:" for ever). */
  stop(): void {
    clearInterval(this.timer);
    this.log.debug({ layersDone: this.layers.filter((l) => l.done).length, layers: this.layers.length }, 'pull progress stopped');
  }

  private checkStalled(): void {
    if (this.timeoutMs <= 0 || this.stalledError) return;
    const still = Date.now() - this.lastMoveAt;
    if (still < this.timeoutMs) return;
    const { bytes, total } = this.totals();
    this.stalledError = new DeadlineExceeded(
      `pulling image ${this.image} made no progress for ${(still / 1000).toFixed(1)} s (imagePullProgressTimeoutMs is ${this.timeoutMs} ms), at ${mb(bytes)} of ${mb(total)} MB: cancelled; the registry is stalled or too slow`,
    );
    this.log.warn({ bytes, total, stalledMs: still }, 'pull cancelled: no progress');
    this.controller.abort(this.stalledError);
  }

  private totals(): { bytes: number; total: number } {
    let bytes = 0;
    let total = 0;
    for (const l of this.layers) {
      bytes += l.bytes;
      total += l.total;
    }
    return { bytes, total };
  }

  private report(): void {
    const { bytes, total } = this.totals();
    const now = Date.now();
    const rate = ((bytes - this.lastReport.bytes) * 1000) / Math.max(1, now - this.lastReport.at);
    this.lastReport = { at: now, bytes };
    const done = this.layers.filter((l) => l.done).length;
    const layers = this.layers.map((l) => ({ layer: short(l.digest), bytes: l.bytes, total: l.total, done: l.done }));
    const busy = layers.filter((l) => !l.done).map((l) => `${l.layer} ${mb(l.bytes)}/${mb(l.total)}`);
    const percent = total > 0 ? Math.floor((bytes * 100) / total) : 100;
    this.log.info(
      { bytes, total, bytesPerSecond: Math.round(rate), layersDone: done, layers },
      `pulling: ${mb(bytes)} of ${mb(total)} MB (${percent}%) at ${mb(rate)} MB/s, ${done} of ${layers.length} layers done${busy.length ? `; ${busy.join(', ')}` : ''}`,
    );
  }
}

/**
 * `source`, ended early when `signal` aborts: the pending read is abandoned and the source closed
 * (its return(): the registry response is cancelled), so a stalled download stops at once.
 */
export async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | null = null;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined); // raced below; unhandled only when never raced
  try {
    for (;;) {
      const r = await Promise.race([it.next(), aborted]);
      if (r.done) return;
      yield r.value;
    }
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    await it.return?.();
  }
}
