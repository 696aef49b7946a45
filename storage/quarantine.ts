/**
 * Quarantine (issue 13, item 7): a persisted row that parseRow (storage/rows.ts) refuses is moved
 * out of the live tables into quarantined_rows, verbatim, with the reason. containerd's recover()
 * skips a container it cannot load and leaves it where it is; moving it instead means the next
 * restart does not trip over it again and the inspector can list it (GET /api/quarantine).
 *
 * Decisions:
 *  - a sandbox goes with its containers: they cannot be restored without their pod's actor (the
 *    containers are its children), and containers.sandbox_id is a foreign key to it;
 *  - its names are released: kubelet recreates a pod it no longer sees under the same name, and a
 *    name held by a row nothing can load would refuse that forever (ALREADY_EXISTS);
 *  - its transition history is kept as it is, so the inspector still shows what led there.
 */
import type { Database } from 'better-sqlite3';
import type { WriteTransaction } from './images.js';
import type { ActorKind } from './store.js';

export interface QuarantinedRow {
  seq: number;
  kind: ActorKind;
  id: string;
  /** The pod a container belonged to (null for a sandbox). */
  sandboxId: string | null;
  state: string;
  /** The context as it was in the live table: text, perhaps not even JSON. */
  context: string;
  version: number;
  reason: string;
  /** Milliseconds since the epoch. */
  quarantinedAt: number;
}

interface LiveRow {
  id: string;
  sandboxId: string | null;
  state: string;
  context: string;
  version: number;
}

export class QuarantineTable {
  constructor(
    private readonly db: Database,
    private readonly write: WriteTransaction = (fn) => db.transaction(fn)(),
  ) {}

  /** Moves the row (a sandbox: and its containers' rows) in one transaction; returns how many moved. */
  quarantine(kind: ActorKind, id: string, reason: string, at = Date.now()): number {
    return this.write(() => {
      if (kind === 'container') {
        const row = this.db.prepare('SELECT id, sandbox_id AS sandboxId, state, context, version FROM containers WHERE id = ?').get(id) as LiveRow | undefined;
        if (!row) return 0;
        this.move('container', row, reason, at);
        return 1;
      }
      const pod = this.db.prepare('SELECT id, NULL AS sandboxId, state, context, version FROM sandboxes WHERE id = ?').get(id) as LiveRow | undefined;
      if (!pod) return 0;
      const containers = this.db
        .prepare('SELECT id, sandbox_id AS sandboxId, state, context, version FROM containers WHERE sandbox_id = ? ORDER BY rowid')
        .all(id) as LiveRow[];
      // Containers first: their rows reference the pod's.
      for (const c of containers) this.move('container', c, `its pod sandbox ${id} was quarantined: ${reason}`, at);
      this.move('sandbox', pod, reason, at);
      return containers.length + 1;
    });
  }

  /** Every quarantined row, oldest first. */
  list(): QuarantinedRow[] {
    return this.db
      .prepare(
        `SELECT seq, kind, id, sandbox_id AS sandboxId, state, context, version, reason, quarantined_at AS quarantinedAt
           FROM quarantined_rows ORDER BY seq`,
      )
      .all() as QuarantinedRow[];
  }

  private move(kind: ActorKind, row: LiveRow, reason: string, at: number): void {
    this.db
      .prepare('INSERT INTO quarantined_rows (kind, id, sandbox_id, state, context, version, reason, quarantined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(kind, row.id, row.sandboxId, row.state, row.context, row.version, reason, at);
    this.db.prepare(`DELETE FROM ${kind === 'sandbox' ? 'sandboxes' : 'containers'} WHERE id = ?`).run(row.id);
    this.db.prepare('DELETE FROM names WHERE id = ?').run(row.id);
  }
}
