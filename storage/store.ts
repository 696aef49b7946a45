/**
 * SQLite (better-sqlite3, WAL) behind a small typed API. Synchronous on purpose: a transition is
 * committed in the same tick the actor reaches it, before any CRI reply can be sent.
 */
import { chmodSync, closeSync, lstatSync, openSync } from 'node:fs';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { AlreadyExists, Unavailable } from '../errors/catalogue.js';
import { LATEST_VERSION, migrate, schemaVersion } from './migrations.js';
import { ImageTable } from './images.js';
import { QuarantineTable, type QuarantinedRow } from './quarantine.js';
import { CleanupTable } from './cleanup-jobs.js';
import { SNAPSHOT_VERSION } from './rows.js';
import { statementCache } from './statements.js';

export type ActorKind = 'sandbox' | 'container';

// The version lives with its upgraders and schemas (storage/rows.ts); re-exported for old imports.
export { SNAPSHOT_VERSION } from './rows.js';
export type { QuarantinedRow } from './quarantine.js';

export interface ActorRow {
  id: string;
  state: string;
  context: string;
  version: number;
  updatedAt: number;
}

export interface Transition {
  seq?: number;
  actorId: string;
  event: string;
  from: string | null;
  to: string;
  /** Milliseconds since the epoch. */
  at: number;
  error: string | null;
  /** The CRI call ("StopPodSandbox#12") or "restore" that set this transition off. */
  cause?: string | null;
}

export interface NameEntry {
  id: string;
  name: string;
  kind: ActorKind;
}

/** A removed actor whose history is still kept (until the retention sweep drops it). */
export interface RemovedActor {
  id: string;
  kind: ActorKind;
  sandboxId: string;
  /** Milliseconds since the epoch. */
  removedAt: number;
}

export interface StoreOptions {
  /** Transitions kept per actor; older ones are pruned as new ones are written (issue 12, item 8). */
  historyPerActor?: number;
  /** The CLI's view: see openReadOnly. */
  readOnly?: boolean;
}

export const DEFAULT_HISTORY_PER_ACTOR = 200;

/** A transitions row as a Transition, and a removed_actors row as a RemovedActor. */
const TRANSITION_COLUMNS = 'seq, actor_id AS actorId, event, from_state AS "from", to_state AS "to", at, error, cause';
const REMOVED_COLUMNS = 'actor_id AS id, kind, sandbox_id AS sandboxId, removed_at AS removedAt';

/** A database whose schema this code does not know, opened read-only: it is refused, never migrated. */
export class SchemaMismatch extends Error {}

/**
 * A write the database did not take (a full disk, an I/O error; issue 12, item 1). Nothing of it
 * was committed (each write is one transaction), so the caller must not act on it: the CRI call
 * that asked gets UNAVAILABLE with this message.
 */
export class StoreWriteFailed extends Unavailable {
  constructor(readonly reason: string) {
    super(`podchart cannot write its state database (${reason}); nothing was changed: free space or fix the disk under the daemon's rootDir, and retry`);
  }
}

/** Errors that say the write itself failed, not the request (a constraint is the caller's fault). */
function isWriteFailure(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown }).code;
  return err instanceof BetterSqlite3.SqliteError && typeof code === 'string' && !code.startsWith('SQLITE_CONSTRAINT');
}

export class Store {
  readonly db: Database;
  readonly images: ImageTable;
  private readonly quarantineTable: QuarantineTable;
  /** Host cleanup left after answered removals (storage/cleanup-jobs.ts). */
  readonly cleanup: CleanupTable;
  private readonly historyPerActor: number;
  private failure: { reason: string; since: number } | null = null;
  /** Prepared once per SQL text (storage/statements.ts). */
  private readonly sql: (text: string) => Statement;

  constructor(path: string, options: StoreOptions = {}) {
    this.historyPerActor = options.historyPerActor ?? DEFAULT_HISTORY_PER_ACTOR;
    if (options.readOnly) {
      this.db = openReadOnly(path);
      this.sql = statementCache(this.db);
      this.images = new ImageTable(this.db, (fn) => this.write(fn));
      this.quarantineTable = new QuarantineTable(this.db, (fn) => this.write(fn));
      this.cleanup = new CleanupTable(this.db, (fn) => this.write(fn));
      return;
    }
    // Every container's env is in here: 0600 (issue 11, item 4). SQLite gives the -wal and -shm it
    // creates the database file's mode, so the file is made 0600 before SQLite first opens it; an
    // older tree's files, the WAL and -shm a crash left included, are narrowed.
    if (path !== ':memory:') closeSync(openSync(path, 'a', 0o600));
    for (const file of [path, `${path}-wal`, `${path}-shm`]) narrowToOwner(file);
    this.db = new BetterSqlite3(path);
    this.sql = statementCache(this.db);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed transition survives power loss, not just a daemon crash.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.images = new ImageTable(this.db, (fn) => this.write(fn));
    this.quarantineTable = new QuarantineTable(this.db, (fn) => this.write(fn));
    this.cleanup = new CleanupTable(this.db, (fn) => this.write(fn));
  }

  /** Why the last write failed, while no write has succeeded since (null: writes succeed). */
  get writeFailure(): { reason: string; since: number } | null {
    return this.failure;
  }

  /**
   * Runs one write transaction. A failure of the write itself (SQLITE_FULL, SQLITE_IOERR_*) is
   * remembered until a write succeeds again, and thrown as StoreWriteFailed.
   */
  write<T>(fn: () => T): T {
    let result: T;
    try {
      result = this.db.transaction(fn)();
    } catch (err) {
      if (!isWriteFailure(err)) throw err;
      const reason = `${err.code}: ${err.message}`;
      if (this.failure?.reason !== reason) this.failure = { reason, since: this.failure?.since ?? Date.now() };
      throw new StoreWriteFailed(reason);
    }
    this.failure = null;
    return result;
  }

  /** A write of one row that nothing reads: whether the database takes writes again. */
  probeWrite(): void {
    this.write(() => this.sql('INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)').run(Date.now()));
  }

  /** The CLI's view of the daemon's database (issue 12, item 9): see openReadOnly below. */
  static openReadOnly(path: string): Store {
    return new Store(path, { readOnly: true });
  }

  close(): void {
    this.db.close();
  }

  /** Reserves a name and inserts the sandbox row in one transaction: the intent, before any effect. */
  insertSandbox(id: string, name: string, state: string, context: unknown): void {
    this.write(() => {
      this.reserveName(id, name, 'sandbox');
      this.sql('INSERT INTO sandboxes (id, state, context, version, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(id, state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now());
    });
  }

  /** Saves an actor's state and records the transition that led there, atomically. */
  saveSandbox(id: string, state: string, context: unknown, transition: Transition | null): void {
    this.write(() => {
      this.sql('UPDATE sandboxes SET state = ?, context = ?, version = ?, updated_at = ? WHERE id = ?')
        .run(state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now(), id);
      if (transition) this.insertTransition(transition);
    });
  }

  /**
   * Forgets a removed sandbox: its row, its name and its containers'. Their history stays, with
   * `final` (the move to "removed") as its last row, until sweepRemovedHistory drops it.
   */
  deleteSandbox(id: string, final: Transition | null = null, removedAt = Date.now()): void {
    this.write(() => {
      const containerIds = this.sql('SELECT id FROM containers WHERE sandbox_id = ?').pluck().all(id) as string[];
      for (const cid of containerIds) this.deleteContainerRows(cid, id, null, removedAt);
      if (final) this.insertTransition(final);
      this.markRemoved(id, 'sandbox', id, removedAt);
      this.sql('DELETE FROM sandboxes WHERE id = ?').run(id);
      this.sql('DELETE FROM names WHERE id = ?').run(id);
    });
  }

  /** Reserves a container's name and inserts its row (its sandbox must exist): the intent. */
  insertContainer(id: string, sandboxId: string, name: string, state: string, context: unknown): void {
    this.write(() => {
      this.reserveName(id, name, 'container');
      this.sql('INSERT INTO containers (id, sandbox_id, state, context, version, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, sandboxId, state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now());
    });
  }

  saveContainer(id: string, state: string, context: unknown, transition: Transition | null): void {
    this.write(() => {
      this.sql('UPDATE containers SET state = ?, context = ?, version = ?, updated_at = ? WHERE id = ?')
        .run(state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now(), id);
      if (transition) this.insertTransition(transition);
    });
  }

  /** Forgets a removed container; its history is kept as a removed sandbox's is. */
  deleteContainer(id: string, final: Transition | null = null, removedAt = Date.now()): void {
    this.write(() => {
      const sandboxId = this.sql('SELECT sandbox_id FROM containers WHERE id = ?').pluck().get(id) as string | undefined;
      if (sandboxId !== undefined) this.deleteContainerRows(id, sandboxId, final, removedAt);
    });
  }

  loadContainer(id: string): (ActorRow & { sandboxId: string }) | null {
    const row = this.sql('SELECT id, sandbox_id AS sandboxId, state, context, version, updated_at AS updatedAt FROM containers WHERE id = ?')
      .get(id) as (ActorRow & { sandboxId: string }) | undefined;
    return row ?? null;
  }

  loadContainers(sandboxId: string): ActorRow[] {
    return this.sql('SELECT id, state, context, version, updated_at AS updatedAt FROM containers WHERE sandbox_id = ? ORDER BY rowid')
      .all(sandboxId) as ActorRow[];
  }

  loadSandboxes(): ActorRow[] {
    return this.sql('SELECT id, state, context, version, updated_at AS updatedAt FROM sandboxes ORDER BY rowid')
      .all() as ActorRow[];
  }

  /**
   * Moves a row restore cannot read out of the live tables (a sandbox with its containers), in
   * one transaction; returns how many rows moved (0: no such row). See storage/quarantine.ts.
   */
  quarantine(kind: ActorKind, id: string, reason: string): number {
    return this.quarantineTable.quarantine(kind, id, reason);
  }

  /** The quarantined rows, oldest first. */
  quarantined(): QuarantinedRow[] {
    return this.quarantineTable.list();
  }

  names(): NameEntry[] {
    return this.sql('SELECT id, name, kind FROM names').all() as NameEntry[];
  }

  /**
   * Records one transition and prunes the actor's oldest beyond historyPerActor, in the caller's
   * transaction. Cheap by construction: both statements walk the (actor_id, seq) index, the
   * subquery at most historyPerActor + 1 entries of this actor, the delete only the rows it drops
   * (usually one); no other actor's rows are read (store.test.ts checks the query plan).
   */
  insertTransition(t: Transition): void {
    this.sql('INSERT INTO transitions (actor_id, event, from_state, to_state, at, error, cause) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(t.actorId, t.event, t.from, t.to, t.at, t.error, t.cause ?? null);
    this.sql(PRUNE_HISTORY_SQL).run(t.actorId, t.actorId, this.historyPerActor);
  }

  /** A removed actor whose history is still kept, or null. */
  removedActor(id: string): RemovedActor | null {
    const row = this.sql(`SELECT ${REMOVED_COLUMNS} FROM removed_actors WHERE actor_id = ?`)
      .get(id) as RemovedActor | undefined;
    return row ?? null;
  }

  /**
   * Drops the history of actors removed at or before `before` (ms since the epoch); returns how
   * many actors it forgot. Reads only the due rows (removed_actors_by_time), then each one's
   * transitions by index.
   */
  sweepRemovedHistory(before: number): number {
    return this.write(() => {
      const due = this.sql('SELECT actor_id FROM removed_actors WHERE removed_at <= ?').pluck().all(before) as string[];
      const dropHistory = this.sql('DELETE FROM transitions WHERE actor_id = ?');
      const dropRow = this.sql('DELETE FROM removed_actors WHERE actor_id = ?');
      for (const id of due) {
        dropHistory.run(id);
        dropRow.run(id);
      }
      return due.length;
    });
  }

  /** The most recent transitions of one actor, oldest first. */
  /** The actor's newest `limit` transitions (those before seq `before`, when given), oldest first. */
  history(actorId: string, limit = 50, before: number | null = null): Transition[] {
    const rows = this.sql(
        `SELECT ${TRANSITION_COLUMNS} FROM transitions WHERE actor_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
      )
      .all(actorId, before ?? Number.MAX_SAFE_INTEGER, limit) as Transition[];
    return rows.reverse();
  }

  /**
   * Every transition one CRI call (or restore) set off, across actors, in the order written: the
   * call's timeline. Only the newest `window` rows are looked at (the table has no index on
   * cause; a seq range keeps the scan short), at most `limit` returned.
   */
  transitionsOf(cause: string, limit = 500, window = 50_000): Transition[] {
    const newest = (this.sql('SELECT MAX(seq) FROM transitions').pluck().get() as number | null) ?? 0;
    return this.sql(
        `SELECT ${TRANSITION_COLUMNS} FROM transitions WHERE seq > ? AND cause = ? ORDER BY seq LIMIT ?`,
      )
      .all(newest - window, cause, limit) as Transition[];
  }

  /** Removed actors whose history is still kept, the most recently removed first. */
  removedActors(limit: number): RemovedActor[] {
    return this.sql(`SELECT ${REMOVED_COLUMNS} FROM removed_actors ORDER BY removed_at DESC LIMIT ?`)
      .all(limit) as RemovedActor[];
  }

  private reserveName(id: string, name: string, kind: ActorKind): void {
    const holder = this.sql('SELECT id, kind FROM names WHERE name = ?').get(name) as
      | { id: string; kind: ActorKind }
      | undefined;
    if (holder) {
      throw new AlreadyExists(`name "${name}" is already reserved for ${holder.kind} ${holder.id}`);
    }
    if (this.sql('SELECT 1 FROM names WHERE id = ?').get(id)) {
      throw new AlreadyExists(`id ${id} is already in use`);
    }
    this.sql('INSERT INTO names (id, name, kind) VALUES (?, ?, ?)').run(id, name, kind);
  }

  private deleteContainerRows(id: string, sandboxId: string, final: Transition | null, removedAt: number): void {
    if (final) this.insertTransition(final);
    this.markRemoved(id, 'container', sandboxId, removedAt);
    this.sql('DELETE FROM containers WHERE id = ?').run(id);
    this.sql('DELETE FROM names WHERE id = ?').run(id);
  }

  private markRemoved(id: string, kind: ActorKind, sandboxId: string, removedAt: number): void {
    this.sql('INSERT OR REPLACE INTO removed_actors (actor_id, kind, sandbox_id, removed_at) VALUES (?, ?, ?, ?)')
      .run(id, kind, sandboxId, removedAt);
  }
}

/** Deletes one actor's transitions older than its `?`th newest (none while it has fewer). */
export const PRUNE_HISTORY_SQL = `
  DELETE FROM transitions
   WHERE actor_id = ?
     AND seq <= (SELECT seq FROM transitions WHERE actor_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`;

/**
 * SQLite's read-only mode on an existing file (issue 12, item 9): nothing of the daemon's database
 * changes, not even its mode; no migration, no pragma that writes. WAL readers need the -shm: with
 * the daemon down SQLite makes an empty -wal and -shm beside the file (the daemon narrows both at
 * its next start). A schema this code does not know is refused, older as well as newer: the
 * queries here are written against one schema, and only the daemon may move it.
 */
function openReadOnly(path: string): Database {
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const version = schemaVersion(db);
    if (version !== LATEST_VERSION) {
      throw new SchemaMismatch(
        `the database was written by ${version > LATEST_VERSION ? 'a newer' : 'an older'} podchart ` +
          `(schema ${version}, this CLI knows ${LATEST_VERSION}): use the podchart shipped with the running daemon`,
      );
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** chmod go-rwx, when the file exists and has any of those bits. */
function narrowToOwner(file: string): void {
  let mode: number;
  try {
    mode = lstatSync(file).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if ((mode & 0o077) !== 0) chmodSync(file, mode & 0o700);
}
