/**
 * Timers of any length. Node's setTimeout takes at most 2^31-1 ms (24.8 days): a longer delay,
 * such as a CRI timeout of 2 147 484 s or an exit watch meant to last for ever, is silently
 * turned into 1 ms. Every delay that comes from a request, the config or "for ever" goes through
 * here: it is waited in steps no longer than that, and Infinity never fires.
 */

export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The clock the timer runs on; tests give a simulated one. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

const SYSTEM_CLOCK: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  now: () => Date.now(),
};

/**
 * Calls `fn` once `ms` have passed (NaN and negatives: at once; Infinity: never); returns the
 * cancel. Each step re-reads the clock, so a long wait ends on time, not a step late.
 */
export function after(ms: number, fn: () => void, clock: Clock = SYSTEM_CLOCK): () => void {
  if (ms === Infinity) return () => undefined;
  const due = clock.now() + (Number.isFinite(ms) && ms > 0 ? ms : 0);
  let handle: unknown = null;
  let cancelled = false;
  const step = (): void => {
    if (cancelled) return;
    const left = due - clock.now();
    if (left <= 0) {
      handle = null;
      fn();
      return;
    }
    handle = clock.setTimeout(step, Math.min(left, MAX_TIMER_MS));
  };
  step();
  return () => {
    cancelled = true;
    if (handle !== null) clock.clearTimeout(handle);
  };
}

/** Milliseconds in `seconds`, for a timer: any size, never NaN (a CRI int64 as a JS number). */
export function secondsToMs(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}
