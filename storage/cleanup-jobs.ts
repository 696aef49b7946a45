/**
 * Cleanup jobs (issue 14, item 3): what is left on the host once a removal has been answered. A
 * RemoveContainer or RemovePodSandbox replies once nothing of the thing runs and its state is
 * gone; its unmounts and deletes are written here first, in their own transaction, before its
 * actor's row is deleted, and done in the background (actors/janitor.ts). A crash at any point
 * leaves either the actor's row (restore finishes the removal) or the job (the next start does
 * it): nothing is forgotten, and every step may run twice.
 */
import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import type { WriteTransaction } from './images.js';

export const CleanupJobSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('container'),
    id: z.string(),
    /** The container dir holding its rootfs mount. */
    rootfsDir: z.string(),
    /** Pinned namespaces to unmount. */
    nsDir: z.string(),
    /** Directories to delete, after the unmounts. */
    dirs: z.array(z.string()),
    /**
     * The runtime whose state of this (exited) container is still to delete: `runc delete`, which
     * also removes its cgroup. Absent in jobs written before it moved here, which had done it.
     */
    runtimeState: z.object({ binary: z.string(), root: z.string(), systemdCgroup: z.boolean() }).optional(),
  }),
  z.object({
    kind: z.literal('sandbox'),
    id: z.string(),
    shm: z.string(),
    nsDir: z.string(),
    netns: z.string().nullable(),
    dirs: z.array(z.string()),
  }),
]);
export type CleanupJob = z.infer<typeof CleanupJobSchema>;

export interface StoredCleanupJob {
  job: CleanupJob;
  attempts: number;
  lastError: string | null;
}

export class CleanupTable {
  constructor(
    private readonly db: Database,
    private readonly write: WriteTransaction = (fn) => db.transaction(fn)(),
  ) {}

  add(job: CleanupJob, at = Date.now()): void {
    this.write(() =>
      this.db.prepare('INSERT OR REPLACE INTO cleanup_jobs (id, job, created_at) VALUES (?, ?, ?)').run(job.id, JSON.stringify(job), at),
    );
  }

  done(id: string): void {
    this.write(() => this.db.prepare('DELETE FROM cleanup_jobs WHERE id = ?').run(id));
  }

  failed(id: string, error: string): void {
    this.write(() => this.db.prepare('UPDATE cleanup_jobs SET attempts = attempts + 1, last_error = ? WHERE id = ?').run(error, id));
  }

  /** Every job left, oldest first; a row that is not a job (a later version's) is left out. */
  list(): StoredCleanupJob[] {
    const rows = this.db.prepare('SELECT job, attempts, last_error AS lastError FROM cleanup_jobs ORDER BY created_at').all() as { job: string; attempts: number; lastError: string | null }[];
    const jobs: StoredCleanupJob[] = [];
    for (const row of rows) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(row.job);
      } catch {
        continue;
      }
      const job = CleanupJobSchema.safeParse(parsed);
      if (job.success) jobs.push({ job: job.data, attempts: row.attempts, lastError: row.lastError });
    }
    return jobs;
  }
}
