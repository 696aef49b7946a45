/**
 * SQLite (better-sqlite3, WAL) behind a small typed API. Synchronous on purpose: a transition is
 * committed in the same tick the actor reaches it, before any CRI reply can be sent.
 */
import { chmodSync, closeSync, lstatSync, openSync } from 'node:fs';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { AlreadyExists } from '../errors/catalogue.js';
import { migrate } from './migrations.js';
import { ImageTable } from './images.js';

export type ActorKind = 'sandbox' | 'container';

/** Bumped when the shape of a persisted context changes (containerd's statusVersion). */
export const SNAPSHOT_VERSION = 1;

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

export class Store {
  readonly db: Database;
  readonly images: ImageTable;

  constructor(path: string) {
    // Every container's env is in here: 0600 (issue 11, item 4). SQLite gives the -wal and -shm it
    // creates the database file's mode, so the file is made 0600 before SQLite first opens it; an
    // older tree's files, the WAL and -shm a crash left included, are narrowed.
    if (path !== ':memory:') closeSync(openSync(path, 'a', 0o600));
    for (const file of [path, `${path}-wal`, `${path}-shm`]) narrowToOwner(file);
    this.db = new BetterSqlite3(path);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed transition survives power loss, not just a daemon crash.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.images = new ImageTable(this.db);
  }

  close(): void {
    this.db.close();
  }

  /** Reserves a name and inserts the sandbox row in one transaction: the intent, before any effect. */
  insertSandbox(id: string, name: string, state: string, context: unknown): void {
    this.db.transaction(() => {
      this.reserveName(id, name, 'sandbox');
      this.db
        .prepare('INSERT INTO sandboxes (id, state, context, version, updated_at) VALUES (?, ?, ?, ?, ?)')
        .run(id, state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now());
    })();
  }

  /** Saves an actor's state and records the transition that led there, atomically. */
  saveSandbox(id: string, state: string, context: unknown, transition: Transition | null): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE sandboxes SET state = ?, context = ?, version = ?, updated_at = ? WHERE id = ?')
        .run(state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now(), id);
      if (transition) this.insertTransition(transition);
    })();
  }

  /** Forgets a removed sandbox: its row, its name, its containers and its history. */
  deleteSandbox(id: string): void {
    this.db.transaction(() => {
      const containerIds = this.db.prepare('SELECT id FROM containers WHERE sandbox_id = ?').pluck().all(id) as string[];
      for (const cid of containerIds) this.deleteContainerRows(cid);
      this.db.prepare('DELETE FROM transitions WHERE actor_id = ?').run(id);
      this.db.prepare('DELETE FROM sandboxes WHERE id = ?').run(id);
      this.db.prepare('DELETE FROM names WHERE id = ?').run(id);
    })();
  }

  /** Reserves a container's name and inserts its row (its sandbox must exist): the intent. */
  insertContainer(id: string, sandboxId: string, name: string, state: string, context: unknown): void {
    this.db.transaction(() => {
      this.reserveName(id, name, 'container');
      this.db
        .prepare('INSERT INTO containers (id, sandbox_id, state, context, version, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, sandboxId, state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now());
    })();
  }

  saveContainer(id: string, state: string, context: unknown, transition: Transition | null): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE containers SET state = ?, context = ?, version = ?, updated_at = ? WHERE id = ?')
        .run(state, JSON.stringify(context), SNAPSHOT_VERSION, Date.now(), id);
      if (transition) this.insertTransition(transition);
    })();
  }

  deleteContainer(id: string): void {
    this.db.transaction(() => this.deleteContainerRows(id))();
  }

  loadContainer(id: string): (ActorRow & { sandboxId: string }) | null {
    const row = this.db
      .prepare('SELECT id, sandbox_id AS sandboxId, state, context, version, updated_at AS updatedAt FROM containers WHERE id = ?')
      .get(id) as (ActorRow & { sandboxId: string }) | undefined;
    return row ?? null;
  }

  loadContainers(sandboxId: string): ActorRow[] {
    return this.db
      .prepare('SELECT id, state, context, version, updated_at AS updatedAt FROM containers WHERE sandbox_id = ? ORDER BY rowid')
      .all(sandboxId) as ActorRow[];
  }

  loadSandboxes(): ActorRow[] {
    return this.db
      .prepare('SELECT id, state, context, version, updated_at AS updatedAt FROM sandboxes ORDER BY rowid')
      .all() as ActorRow[];
  }

  names(): NameEntry[] {
    return this.db.prepare('SELECT id, name, kind FROM names').all() as NameEntry[];
  }

  insertTransition(t: Transition): void {
    this.db
      .prepare('INSERT INTO transitions (actor_id, event, from_state, to_state, at, error, cause) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(t.actorId, t.event, t.from, t.to, t.at, t.error, t.cause ?? null);
  }

  /** The most recent transitions of one actor, oldest first. */
  history(actorId: string, limit = 50): Transition[] {
    const rows = this.db
      .prepare(
        `SELECT seq, actor_id AS actorId, event, from_state AS "from", to_state AS "to", at, error, cause
           FROM transitions WHERE actor_id = ? ORDER BY seq DESC LIMIT ?`,
      )
      .all(actorId, limit) as Transition[];
    return rows.reverse();
  }

  private reserveName(id: string, name: string, kind: ActorKind): void {
    const holder = this.db.prepare('SELECT id, kind FROM names WHERE name = ?').get(name) as
      | { id: string; kind: ActorKind }
      | undefined;
    if (holder) {
      throw new AlreadyExists(`name "${name}" is already reserved for ${holder.kind} ${holder.id}`);
    }
    if (this.db.prepare('SELECT 1 FROM names WHERE id = ?').get(id)) {
      throw new AlreadyExists(`id ${id} is already in use`);
    }
    this.db.prepare('INSERT INTO names (id, name, kind) VALUES (?, ?, ?)').run(id, name, kind);
  }

  private deleteContainerRows(id: string): void {
    this.db.prepare('DELETE FROM transitions WHERE actor_id = ?').run(id);
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
    this.db.prepare('DELETE FROM names WHERE id = ?').run(id);
  }
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
