import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { LATEST_VERSION, MIGRATIONS, migrate, schemaVersion } from './migrations.js';
import { DEFAULT_HISTORY_PER_ACTOR, PRUNE_HISTORY_SQL, SNAPSHOT_VERSION, SchemaMismatch, Store, type Transition } from './store.js';
import { AlreadyExists } from '../errors/catalogue.js';

function tempDb(): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-store-'));
  return { path: join(dir, 'state.db'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

const TABLES = ['cleanup_jobs', 'containers', 'image_refs', 'images', 'names', 'quarantined_rows', 'removed_actors', 'sandboxes', 'transitions', 'write_probe'];

function tables(db: BetterSqlite3.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[]);
}

test('migrates an empty file to the latest version, in WAL mode', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    assert.equal(schemaVersion(store.db), LATEST_VERSION);
    assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.deepEqual(tables(store.db), TABLES);
    store.close();
  } finally {
    done();
  }
});

test('migrates forward from every earlier version, keeping rows', () => {
  for (const start of MIGRATIONS.map((m) => m.version)) {
    const { path, done } = tempDb();
    try {
      const db = new BetterSqlite3(path);
      assert.equal(migrate(db, start), start);
      db.prepare("INSERT INTO names (id, name, kind) VALUES ('a1', 'pod-a', 'sandbox')").run();
      db.close();
      const store = new Store(path);
      assert.equal(schemaVersion(store.db), LATEST_VERSION, `from version ${start}`);
      assert.deepEqual(tables(store.db), TABLES, `from version ${start}`);
      assert.deepEqual(store.names(), [{ id: 'a1', name: 'pod-a', kind: 'sandbox' }]);
      store.close();
    } finally {
      done();
    }
  }
});

test('refuses a database newer than the code', () => {
  const { path, done } = tempDb();
  try {
    const db = new BetterSqlite3(path);
    db.pragma(`user_version = ${LATEST_VERSION + 1}`);
    db.close();
    assert.throws(() => new Store(path), /newer than this podchart knows/);
  } finally {
    done();
  }
});

test('names are unique across kinds; a taken name inserts nothing', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('id1', 'k8s_POD_a_ns_u_0', 'UNKNOWN', { x: 1 });
    assert.throws(() => store.insertSandbox('id2', 'k8s_POD_a_ns_u_0', 'UNKNOWN', {}), AlreadyExists);
    assert.equal(store.loadSandboxes().length, 1);
    assert.equal(store.names().length, 1);
  } finally {
    done();
  }
});

test('saves state with its transition atomically; delete forgets the row and name, keeps the history', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('id1', 'pod', 'UNKNOWN', {});
    store.saveSandbox('id1', 'RUNNING', { pid: 7 }, { actorId: 'id1', event: 'CREATE', from: 'UNKNOWN', to: 'RUNNING', at: 1, error: null });
    const [row] = store.loadSandboxes();
    assert.equal(row?.state, 'RUNNING');
    assert.deepEqual(JSON.parse(row?.context ?? '{}'), { pid: 7 });
    assert.deepEqual(store.history('id1').map((t) => [t.event, t.from, t.to]), [['CREATE', 'UNKNOWN', 'RUNNING']]);
    store.deleteSandbox('id1', { actorId: 'id1', event: 'removeSandbox.done', from: 'REMOVING', to: 'removed', at: 5, error: null }, 5);
    assert.equal(store.loadSandboxes().length, 0);
    assert.equal(store.names().length, 0);
    assert.deepEqual(store.history('id1').map((t) => t.to), ['RUNNING', 'removed']);
    assert.deepEqual(store.removedActor('id1'), { id: 'id1', kind: 'sandbox', sandboxId: 'id1', removedAt: 5 });
  } finally {
    done();
  }
});

test('containers: a row per container under its sandbox, names shared with pods, gone with the pod', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('pod1', 'k8s_POD_a_ns_u_0', 'RUNNING', {});
    store.insertContainer('c1', 'pod1', 'k8s_app_a_ns_u_0', 'UNKNOWN', { n: 1 });
    assert.throws(() => store.insertContainer('c2', 'pod1', 'k8s_POD_a_ns_u_0', 'UNKNOWN', {}), AlreadyExists, 'a pod name is taken for containers too');
    assert.throws(() => store.insertContainer('c3', 'nopod', 'k8s_x_a_ns_u_0', 'UNKNOWN', {}), /FOREIGN KEY/);
    store.saveContainer('c1', 'CREATED', { n: 2 }, { actorId: 'c1', event: 'createContainer.done', from: 'CREATING', to: 'CREATED', at: 2, error: null });
    assert.deepEqual(store.loadContainers('pod1').map((r) => [r.id, r.state, r.context]), [['c1', 'CREATED', '{"n":2}']]);
    assert.equal(store.history('c1').length, 1);
    store.deleteSandbox('pod1');
    assert.deepEqual(store.loadContainers('pod1'), []);
    assert.equal(store.history('c1').length, 1, 'a removed container keeps its history for the retention period');
    assert.equal(store.removedActor('c1')?.sandboxId, 'pod1');
    assert.equal(store.names().length, 0);
  } finally {
    done();
  }
});

test('quarantine moves a pod and its containers out of the live tables, verbatim, in one transaction', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('pod1', 'k8s_POD_a_ns_u_0', 'RUNNING', { a: 1 });
    store.insertContainer('c1', 'pod1', 'k8s_app_a_ns_u_0', 'RUNNING', { c: 1 });
    store.insertSandbox('pod2', 'k8s_POD_b_ns_u_0', 'RUNNING', { b: 1 });
    store.saveContainer('c1', 'EXITED', { c: 2 }, { actorId: 'c1', event: 'EXIT', from: 'RUNNING', to: 'EXITED', at: 3, error: null });
    // A failure mid-move (here at the pod, after its container) leaves everything where it was.
    store.db.exec("CREATE TRIGGER no_pods BEFORE INSERT ON quarantined_rows WHEN NEW.kind = 'sandbox' BEGIN SELECT RAISE(ABORT, 'refused'); END");
    assert.throws(() => store.quarantine('sandbox', 'pod1', 'corrupt'), /refused/);
    assert.equal(store.loadContainers('pod1').length, 1);
    assert.deepEqual(store.quarantined(), []);
    store.db.exec('DROP TRIGGER no_pods');

    assert.equal(store.quarantine('sandbox', 'pod1', 'spec.uid: Expected string, received number'), 2);
    assert.deepEqual(store.loadSandboxes().map((r) => r.id), ['pod2']);
    assert.deepEqual(store.loadContainers('pod1'), []);
    assert.deepEqual(store.names().map((n) => n.id), ['pod2'], 'the names are free for kubelet to recreate the pod');
    assert.equal(store.history('c1').length, 1, 'the history stays');
    const rows = store.quarantined();
    assert.deepEqual(
      rows.map(({ kind, id, sandboxId, state, context, version, reason }) => [kind, id, sandboxId, state, context, version, reason]),
      [
        ['container', 'c1', 'pod1', 'EXITED', '{"c":2}', SNAPSHOT_VERSION, 'its pod sandbox pod1 was quarantined: spec.uid: Expected string, received number'],
        ['sandbox', 'pod1', null, 'RUNNING', '{"a":1}', SNAPSHOT_VERSION, 'spec.uid: Expected string, received number'],
      ],
    );
    assert.ok(rows.every((r) => typeof r.quarantinedAt === 'number' && r.seq > 0));
    store.insertSandbox('pod1b', 'k8s_POD_a_ns_u_0', 'UNKNOWN', {});
  } finally {
    done();
  }
});

test('quarantine of one container leaves its pod; of an unknown id, nothing', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('pod1', 'k8s_POD_a_ns_u_0', 'RUNNING', {});
    store.insertContainer('c1', 'pod1', 'k8s_app_a_ns_u_0', 'RUNNING', {});
    store.insertContainer('c2', 'pod1', 'k8s_side_a_ns_u_0', 'RUNNING', {});
    assert.equal(store.quarantine('container', 'nope', 'x'), 0);
    assert.equal(store.quarantine('sandbox', 'c1', 'x'), 0, 'a container id is no sandbox');
    assert.equal(store.quarantine('container', 'c1', 'state "BOGUS"'), 1);
    assert.deepEqual(store.loadContainers('pod1').map((r) => r.id), ['c2']);
    assert.equal(store.loadSandboxes().length, 1);
    assert.deepEqual(store.quarantined().map((r) => [r.kind, r.id, r.sandboxId, r.reason]), [['container', 'c1', 'pod1', 'state "BOGUS"']]);
  } finally {
    done();
  }
});

test('the database, its WAL and -shm are 0600; an older 0644 database is narrowed on open', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('s1', 'pod-s1', 'PENDING', {}); // a write: the WAL exists now
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, file);
    store.close();
    chmodSync(path, 0o644);
    new Store(path).close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    done();
  }
});

function transition(actorId: string, n: number): Transition {
  return { actorId, event: `E${n}`, from: `S${n - 1}`, to: `S${n}`, at: n, error: null, cause: null };
}

test('history is capped per actor: the oldest rows are pruned as new ones are written', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path, { historyPerActor: 5 });
    for (const id of ['a', 'b']) store.insertSandbox(id, `pod-${id}`, 'UNKNOWN', {});
    for (let n = 1; n <= 12; n++) store.saveSandbox('a', `S${n}`, {}, transition('a', n));
    for (let n = 1; n <= 3; n++) store.saveSandbox('b', `S${n}`, {}, transition('b', n));
    assert.deepEqual(store.history('a', 100).map((t) => t.event), ['E8', 'E9', 'E10', 'E11', 'E12'], 'the newest 5, oldest first');
    assert.deepEqual(store.history('b', 100).map((t) => t.event), ['E1', 'E2', 'E3'], 'an actor under the cap keeps all; another actor\'s pruning leaves it alone');
    assert.equal(store.db.prepare('SELECT count(*) FROM transitions').pluck().get(), 8);
    store.close();
  } finally {
    done();
  }
});

test('the default cap is 200 rows per actor', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertContainer('c', (store.insertSandbox('p', 'pod', 'RUNNING', {}), 'p'), 'ctr', 'UNKNOWN', {});
    for (let n = 1; n <= 250; n++) store.saveContainer('c', `S${n}`, {}, transition('c', n));
    const kept = store.history('c', 1000);
    assert.equal(kept.length, DEFAULT_HISTORY_PER_ACTOR);
    assert.equal(kept[0]?.event, 'E51');
    store.close();
  } finally {
    done();
  }
});

test('pruning and the sweep read by index, never the whole table', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    const plan = (sql: string, ...args: unknown[]): string[] => (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail);
    const prune = plan(PRUNE_HISTORY_SQL, 'a', 'a', 200);
    for (const step of prune) assert.match(step, /^(SEARCH transitions USING (COVERING )?INDEX transitions_by_actor \(actor_id=\?|SCALAR SUBQUERY)/, prune.join('; '));
    const due = plan('SELECT actor_id FROM removed_actors WHERE removed_at <= ?', 0).join('; ');
    assert.match(due, /^SEARCH removed_actors USING (COVERING )?INDEX removed_actors_by_time/, due);
    store.close();
  } finally {
    done();
  }
});

test('removed actors\' history is kept until the sweep passes its retention, then dropped', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('p1', 'pod-1', 'RUNNING', {});
    store.insertContainer('c1', 'p1', 'ctr-1', 'RUNNING', {});
    store.insertSandbox('p2', 'pod-2', 'RUNNING', {});
    store.saveContainer('c1', 'EXITED', {}, transition('c1', 1));
    store.saveSandbox('p1', 'STOPPED', {}, transition('p1', 1));
    store.saveSandbox('p2', 'STOPPED', {}, transition('p2', 1));
    store.deleteContainer('c1', { ...transition('c1', 2), to: 'removed' }, 1_000);
    store.deleteSandbox('p1', { ...transition('p1', 2), to: 'removed' }, 2_000);
    assert.deepEqual(store.history('c1').map((t) => t.to), ['S1', 'removed']);
    assert.equal(store.removedActor('c1')?.kind, 'container');

    assert.equal(store.sweepRemovedHistory(999), 0, 'nothing is due yet');
    assert.equal(store.sweepRemovedHistory(1_000), 1, 'the container is due');
    assert.deepEqual(store.history('c1'), []);
    assert.equal(store.removedActor('c1'), null);
    assert.equal(store.history('p1').length, 2, 'the pod removed later is kept');
    assert.equal(store.sweepRemovedHistory(10_000), 1);
    assert.deepEqual(store.history('p1'), []);
    assert.equal(store.history('p2').length, 1, 'a live actor\'s history is never swept');
    store.close();
  } finally {
    done();
  }
});

test('read-only: no migration of an older schema, a newer one refused with a clear message', () => {
  const { path, done } = tempDb();
  try {
    const older = new BetterSqlite3(path);
    migrate(older, LATEST_VERSION - 1);
    older.close();
    assert.throws(() => Store.openReadOnly(path), new RegExp(`written by an older podchart \\(schema ${LATEST_VERSION - 1}, this CLI knows ${LATEST_VERSION}\\)`));
    const db = new BetterSqlite3(path);
    assert.equal(schemaVersion(db), LATEST_VERSION - 1, 'the read-only open migrated the database');
    db.pragma(`user_version = ${LATEST_VERSION + 1}`);
    db.close();
    assert.throws(() => Store.openReadOnly(path), (err: Error) => err instanceof SchemaMismatch &&
      err.message === `the database was written by a newer podchart (schema ${LATEST_VERSION + 1}, this CLI knows ${LATEST_VERSION}): use the podchart shipped with the running daemon`);
    assert.throws(() => Store.openReadOnly(`${path}.missing`), /unable to open/);
    assert.equal(existsSync(`${path}.missing`), false, 'a missing database was created');
  } finally {
    done();
  }
});

test('read-only: writes are refused by SQLite itself', () => {
  const { path, done } = tempDb();
  try {
    new Store(path).close();
    const ro = Store.openReadOnly(path);
    assert.throws(() => ro.insertSandbox('x', 'pod-x', 'UNKNOWN', {}), /readonly/);
    ro.close();
  } finally {
    done();
  }
});
