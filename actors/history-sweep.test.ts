import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Store, type Transition } from '../storage/store.js';
import { HistorySweep } from './history-sweep.js';

function tempDb(): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-sweep-'));
  return { path: join(dir, 'state.db'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

function transition(actorId: string, n: number): Transition {
  return { actorId, event: `E${n}`, from: `S${n - 1}`, to: `S${n}`, at: n, error: null, cause: null };
}

test('the sweep runs at start and on one unref\'d timer, half the retention apart within [1 s, 1 min]', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    let now = 10_000_000;
    store.insertSandbox('p', 'pod', 'RUNNING', {});
    store.deleteSandbox('p', { ...transition('p', 1), to: 'removed' }, now - 3_600_000);
    const logger = pino({ level: 'silent' });
    const sweep = new HistorySweep({ store, retentionSeconds: 3600, logger, now: () => now });
    assert.equal(sweep.intervalMs, 60_000);
    assert.equal(new HistorySweep({ store, retentionSeconds: 0, logger }).intervalMs, 1_000);
    assert.equal(new HistorySweep({ store, retentionSeconds: 10, logger }).intervalMs, 5_000);
    sweep.start(); // what a stopped daemon kept past its time goes at start
    assert.equal(store.history('p').length, 0);
    store.insertSandbox('q', 'pod-q', 'RUNNING', {});
    store.deleteSandbox('q', { ...transition('q', 1), to: 'removed' }, now);
    now += 3_599_000;
    assert.equal(sweep.sweep(), 0);
    now += 1_000;
    assert.equal(sweep.sweep(), 1);
    sweep.stop();
    store.close();
  } finally {
    done();
  }
});
