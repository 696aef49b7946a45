import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { after, MAX_TIMER_MS, type Clock } from './long-timer.js';

/** A simulated clock: time moves only by `advance`, and every delay asked of it is recorded. */
function simulatedClock() {
  let now = 0;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const asked: number[] = [];
  const clock: Clock = {
    setTimeout: (fn, ms) => {
      asked.push(ms);
      const id = next++;
      // Node's own rule: a delay above 2^31-1 ms becomes 1 ms. A timer asked for more fires early here too.
      timers.set(id, { at: now + (ms > MAX_TIMER_MS ? 1 : ms), fn });
      return id;
    },
    clearTimeout: (id) => void timers.delete(id as number),
    now: () => now,
  };
  const advance = (ms: number): void => {
    const until = now + ms;
    for (;;) {
      const due = [...timers.entries()].filter(([, t]) => t.at <= until).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].fn();
    }
    now = until;
  };
  return { clock, advance, asked, pending: () => timers.size };
}

const DAY = 24 * 3600 * 1000;

test('a 30-day timer fires after 30 days, not at 24.8 days nor at once', () => {
  const c = simulatedClock();
  let fired = 0;
  after(30 * DAY, () => fired++, c.clock);
  c.advance(25 * DAY);
  assert.equal(fired, 0);
  c.advance(5 * DAY - 1);
  assert.equal(fired, 0);
  c.advance(1);
  assert.equal(fired, 1);
  assert.ok(c.asked.every((ms) => ms <= MAX_TIMER_MS), 'no delay above what setTimeout takes');
});

test('Infinity never fires and arms nothing; NaN and negatives fire at once; cancel stops it', () => {
  const c = simulatedClock();
  let fired = 0;
  after(Infinity, () => fired++, c.clock);
  assert.equal(c.pending(), 0);
  after(Number.NaN, () => fired++, c.clock);
  after(-5, () => fired++, c.clock);
  assert.equal(fired, 2);
  const cancel = after(3 * MAX_TIMER_MS, () => fired++, c.clock);
  c.advance(MAX_TIMER_MS + 10);
  cancel();
  c.advance(10 * MAX_TIMER_MS);
  assert.equal(fired, 2);
  assert.equal(c.pending(), 0);
});

test('any delay fires exactly when due', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (ms) => {
      const c = simulatedClock();
      let firedAt = -1;
      after(ms, () => (firedAt = c.clock.now()), c.clock);
      c.advance(2 ** 41);
      return firedAt === ms && c.asked.every((d) => d <= MAX_TIMER_MS);
    }),
  );
});
