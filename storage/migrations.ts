/**
 * Forward-only schema migrations. Version N is `PRAGMA user_version = N`; each step runs in
 * its own transaction, so a crash mid-migration leaves the previous version intact.
 * Never edit a released step: add a new one.
 */
import type { Database } from 'better-sqlite3';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'id/name registry, sandboxes, containers',
    sql: `
      -- seed 000 §3.3: ids and names unique across pods and containers.
      CREATE TABLE names (
        id   TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('sandbox', 'container'))
      );
      -- One row per actor: its top-level state and its context (JSON), versioned.
      CREATE TABLE sandboxes (
        id         TEXT PRIMARY KEY REFERENCES names(id),
        state      TEXT NOT NULL,
        context    TEXT NOT NULL,
        version    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE containers (
        id         TEXT PRIMARY KEY REFERENCES names(id),
        sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
        state      TEXT NOT NULL,
        context    TEXT NOT NULL,
        version    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX containers_by_sandbox ON containers(sandbox_id);
    `,
  },
  {
    version: 2,
    description: 'transition history for the inspector',
    sql: `
      CREATE TABLE transitions (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        actor_id   TEXT NOT NULL,
        event      TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        at         INTEGER NOT NULL,
        error      TEXT
      );
      CREATE INDEX transitions_by_actor ON transitions(actor_id, seq);
    `,
  },
  {
    version: 3,
    description: 'images and their references',
    sql: `
      -- id is the config digest. An image row is written only once every blob and layer is in
      -- place, in one transaction with its refs: no half image is ever visible.
      CREATE TABLE images (
        id              TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        size            INTEGER NOT NULL,
        config          TEXT NOT NULL,
        layers          TEXT NOT NULL,
        pulled_at       INTEGER NOT NULL
      );
      -- Repo tags (name:tag) and repo digests (name@sha256:...), each naming one image.
      CREATE TABLE image_refs (
        ref      TEXT PRIMARY KEY,
        kind     TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
      );
      CREATE INDEX image_refs_by_image ON image_refs(image_id);
    `,
  },
  {
    version: 4,
    description: 'the cause of each transition (a CRI call, or restore)',
    sql: `ALTER TABLE transitions ADD COLUMN cause TEXT;`,
  },
  {
    version: 5,
    description: 'removed actors, whose history is kept for a while (issue 12, item 8)',
    sql: `
      -- A removed actor's transitions stay for removedHistoryRetentionSeconds, then the sweep
      -- drops them; removed_at is indexed so the sweep reads only what is due.
      CREATE TABLE removed_actors (
        actor_id   TEXT PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('sandbox', 'container')),
        sandbox_id TEXT NOT NULL,
        removed_at INTEGER NOT NULL
      );
      CREATE INDEX removed_actors_by_time ON removed_actors(removed_at);
    `,
  },
  {
    version: 6,
    description: 'one row the daemon rewrites to learn whether the database takes writes again (issue 12, item 1)',
    sql: `CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);`,
  },
  {
    version: 7,
    description: 'rows restore could not read, kept aside with the reason (issue 13, item 7)',
    sql: `
      -- Verbatim copies of refused actor rows: out of the live tables so restore and the CRI
      -- never see them, kept so an operator can read why and what. No key on id: the same id may
      -- be quarantined twice (a pod recreated under it), each copy is its own row.
      CREATE TABLE quarantined_rows (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL CHECK (kind IN ('sandbox', 'container')),
        id             TEXT NOT NULL,
        sandbox_id     TEXT,
        state          TEXT NOT NULL,
        context        TEXT NOT NULL,
        version        INTEGER NOT NULL,
        reason         TEXT NOT NULL,
        quarantined_at INTEGER NOT NULL
      );
      CREATE INDEX quarantined_rows_by_id ON quarantined_rows(id);
    `,
  },
  {
    version: 8,
    description: 'host cleanup left to do after a removal was answered: unmounts and deletes (issue 14, item 3)',
    sql: `
      -- One row per removed pod or container whose files and mounts are not all gone yet. Written
      -- before the actor's row is deleted, deleted once everything in it is done; the job is JSON
      -- (storage/cleanup-jobs.ts), every step in it idempotent.
      CREATE TABLE cleanup_jobs (
        id         TEXT PRIMARY KEY,
        job        TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
      );
    `,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export function schemaVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Brings the schema up to `target` (default: latest). Refuses a database newer than this code. */
export function migrate(db: Database, target = LATEST_VERSION): number {
  const current = schemaVersion(db);
  if (current > LATEST_VERSION) {
    throw new Error(
      `database schema version ${current} is newer than this podchart knows (${LATEST_VERSION}); ` +
        'upgrade podchart or point it at another state directory',
    );
  }
  for (const step of MIGRATIONS) {
    if (step.version <= current || step.version > target) continue;
    db.transaction(() => {
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    })();
  }
  return schemaVersion(db);
}
