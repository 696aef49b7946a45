import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Store, StoreWriteFailed } from '../storage/store.js';
import { RowWriter } from './row-writer.js';
import { afterCommit } from './actor-util.js';
import { fillDisk } from '../test/fill-disk.js';

/** A real, small filesystem of its own (tmpfs), so that it can really be filled. */
function smallFilesystem(sizeKiB: number): { dir: string; fill: () => string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  return {
    dir,
    fill: () => {
      fillDisk(filler);
      return filler;
    },
    done: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const logger = pino({ level: 'silent' });
const ctx = (n: number): Record<string, unknown> => ({ id: 'c1', n });
const transition = (from: string, to: string) => ({ actorId: 'c1', event: 'EV', from, to, at: Date.now(), error: null, cause: null });

test('a write the full disk refuses is held, its effect waits, and it lands once space is freed', async () => {
  const fs = smallFilesystem(1024);
  const store = new Store(join(fs.dir, 'state.db'));
  const persist = new RowWriter({ store, logger, retryMs: 3_600_000 }); // flushed by hand below
  try {
    store.insertSandbox('p1', 'pod', 'RUNNING', { id: 'p1' });
    store.insertContainer('c1', 'p1', 'ctr', 'CREATED', ctx(0));
    persist.save('container', 'c1', 'STARTING', ctx(1), transition('CREATED', 'STARTING'));
    persist.commitPending(); // the end of the turn, by hand
    assert.equal(persist.failure(), null, 'writes succeed before the disk is full');

    const filler = fs.fill();
    persist.save('container', 'c1', 'RUNNING', ctx(2), transition('STARTING', 'RUNNING'));
    persist.commitPending();
    const reason = persist.failure();
    assert.match(reason ?? '', /SQLITE_(FULL|IOERR)/, 'the failure names SQLite\'s reason');
    assert.equal(store.loadContainer('c1')?.state, 'STARTING', 'the refused row is not on disk');

    // An effect of the held state waits; so does one of a second held transition.
    let ran = false;
    const effect = afterCommit((key) => persist.committed(key), 'container:c1', new AbortController().signal, async () => {
      ran = true;
      return store.loadContainer('c1')?.state;
    });
    persist.save('container', 'c1', 'EXITED', ctx(3), transition('RUNNING', 'EXITED'));
    const cancelled = new AbortController();
    const left = afterCommit((key) => persist.committed(key), 'container:c1', cancelled.signal, async () => 'ran');
    cancelled.abort(); // its state was left while held: it must never run
    persist.flush(); // still full: nothing changes
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(ran, false, 'an effect ran on a state the database refused');
    assert.equal(store.loadContainer('c1')?.state, 'STARTING');
    assert.throws(() => store.insertSandbox('p2', 'pod2', 'UNKNOWN', {}), StoreWriteFailed, 'a new row is refused with UNAVAILABLE');

    rmSync(filler);
    persist.flush();
    assert.equal(persist.failure(), null, 'ready again once the held rows are written');
    assert.equal(await effect, 'EXITED', 'the effect ran after the rows were written');
    await assert.rejects(left, /cancelled before it ran/);
    const row = store.loadContainer('c1');
    assert.equal(row?.state, 'EXITED');
    assert.deepEqual(JSON.parse(row?.context ?? '{}'), ctx(3));
    assert.deepEqual(store.history('c1').map((t) => t.to), ['STARTING', 'RUNNING', 'EXITED'], 'no transition was lost, none reordered');
  } finally {
    persist.stop();
    store.close();
    fs.done();
  }
});

test('a refused insert leaves nothing held, and a probe write clears the failure once space is back', () => {
  const fs = smallFilesystem(1024);
  const store = new Store(join(fs.dir, 'state.db'));
  const persist = new RowWriter({ store, logger, retryMs: 3_600_000 });
  try {
    const filler = fs.fill();
    assert.throws(() => store.insertSandbox('p1', 'pod', 'UNKNOWN', {}), (err: unknown) =>
      err instanceof StoreWriteFailed && /cannot write its state database \(SQLITE_(FULL|IOERR)[^)]*\); nothing was changed/.test(err.message));
    assert.match(persist.failure() ?? '', /SQLITE_/);
    persist.flush();
    assert.notEqual(persist.failure(), null, 'the probe fails while the disk is full');
    rmSync(filler);
    persist.flush();
    assert.equal(persist.failure(), null);
    store.insertSandbox('p1', 'pod', 'UNKNOWN', {});
    assert.equal(store.loadSandboxes().length, 1, 'the name was not left reserved by the refused insert');
  } finally {
    persist.stop();
    store.close();
    fs.done();
  }
});

test('a removal held with the disk full is written after the rows before it', () => {
  const fs = smallFilesystem(1024);
  const store = new Store(join(fs.dir, 'state.db'));
  const persist = new RowWriter({ store, logger, retryMs: 3_600_000 });
  try {
    store.insertSandbox('p1', 'pod', 'RUNNING', { id: 'p1' });
    store.insertContainer('c1', 'p1', 'ctr', 'EXITED', ctx(0));
    const filler = fs.fill();
    persist.save('container', 'c1', 'REMOVING', ctx(1), transition('EXITED', 'REMOVING'));
    persist.remove('container', 'c1', transition('REMOVING', 'removed'), Date.now());
    persist.commitPending();
    assert.notEqual(store.loadContainer('c1'), null);
    rmSync(filler);
    persist.flush();
    assert.equal(store.loadContainer('c1'), null, 'the removal landed');
    assert.deepEqual(store.history('c1').map((t) => t.to), ['REMOVING', 'removed']);
    assert.notEqual(store.removedActor('c1'), null);
    store.insertContainer('c2', 'p1', 'ctr', 'UNKNOWN', {}); // its name is free again
  } finally {
    persist.stop();
    store.close();
    fs.done();
  }
});

test('group commit: the rows of one turn land in one transaction, and effects and replies wait for it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-group-'));
  const store = new Store(join(dir, 'state.db'));
  const persist = new RowWriter({ store, logger });
  // Counts top-level transactions (a nested write is a savepoint in its caller's).
  let transactions = 0;
  let depth = 0;
  const write = store.write.bind(store);
  store.write = <T>(fn: () => T): T => {
    if (depth++ === 0) transactions++;
    try {
      return write(fn);
    } finally {
      depth--;
    }
  };
  try {
    store.insertSandbox('p1', 'pod', 'RUNNING', { id: 'p1' });
    for (const c of ['c1', 'c2', 'c3']) store.insertContainer(c, 'p1', c, 'CREATED', { id: c });
    transactions = 0;
    let effectSaw: string | undefined;
    const effect = afterCommit((key) => persist.committed(key), 'container:c2', new AbortController().signal, async () => {
      effectSaw = store.loadContainer('c2')?.state;
    });
    for (const c of ['c1', 'c2', 'c3']) {
      persist.save('container', c, 'STARTING', { id: c }, { ...transition('CREATED', 'STARTING'), actorId: c });
      persist.save('container', c, 'RUNNING', { id: c }, { ...transition('STARTING', 'RUNNING'), actorId: c });
    }
    persist.remove('container', 'c3', { ...transition('RUNNING', 'removed'), actorId: 'c3' }, Date.now());
    assert.equal(store.loadContainer('c1')?.state, 'CREATED', 'nothing is written before the turn ends');
    await persist.flushed('container:c1');
    await effect;
    assert.equal(transactions, 1, 'six saves and a removal, one transaction');
    assert.equal(effectSaw, 'RUNNING', 'the effect ran after the commit, on the committed row');
    assert.deepEqual(store.history('c2').map((t) => t.to), ['STARTING', 'RUNNING'], 'every transition kept, in order');
    assert.equal(store.loadContainer('c3'), null);
    assert.deepEqual(store.history('c3').map((t) => t.to), ['STARTING', 'RUNNING', 'removed']);
    await persist.flushed('container:c1'); // nothing pending: at once
    assert.equal(transactions, 1);
  } finally {
    persist.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
