import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { LATEST_VERSION, MIGRATIONS, migrate, schemaVersion } from './migrations.js';
import { Store } from './store.js';
import { AlreadyExists } from '../errors/catalogue.js';

function tempDb(): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-store-'));
  return { path: join(dir, 'state.db'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

const TABLES = ['containers', 'image_refs', 'images', 'names', 'sandboxes', 'transitions'];

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

test('saves state with its transition atomically and forgets everything on delete', () => {
  const { path, done } = tempDb();
  try {
    const store = new Store(path);
    store.insertSandbox('id1', 'pod', 'UNKNOWN', {});
    store.saveSandbox('id1', 'RUNNING', { pid: 7 }, { actorId: 'id1', event: 'CREATE', from: 'UNKNOWN', to: 'RUNNING', at: 1, error: null });
    const [row] = store.loadSandboxes();
    assert.equal(row?.state, 'RUNNING');
    assert.deepEqual(JSON.parse(row?.context ?? '{}'), { pid: 7 });
    assert.deepEqual(store.history('id1').map((t) => [t.event, t.from, t.to]), [['CREATE', 'UNKNOWN', 'RUNNING']]);
    store.deleteSandbox('id1');
    assert.equal(store.loadSandboxes().length, 0);
    assert.equal(store.names().length, 0);
    assert.equal(store.history('id1').length, 0);
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
    assert.equal(store.history('c1').length, 0);
    assert.equal(store.names().length, 0);
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
