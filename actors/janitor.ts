/**
 * The janitor (issue 14, item 3): does the host cleanup of answered removals in the background,
 * one job at a time, from storage/cleanup-jobs.ts. containerd does the same with its snapshot GC:
 * RemoveContainer forgets the container and the disk is freed after the reply.
 *
 * What a removal must finish before it answers stays in the effect: nothing of the container or
 * pod runs (kill, the pause's `runc delete`) and the job is on disk. The rest (an exited container's
 * `runc delete`, unmounting the rootfs, the pinned namespaces, shm and the netns, deleting the
 * dirs, collecting a dangling image) is here,
 * while a worker is free; when all are busy (sustained load) or on a rollback, the removal does
 * it itself before answering (`clean`), so the cleanup never falls behind the replies. A queued
 * job that fails is logged with what is left, kept, and retried later and at the next start.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Store } from '../storage/store.js';
import type { CleanupJob } from '../storage/cleanup-jobs.js';
import type { ImageService } from '../images/image-service.js';
import { unpinNamespaces } from '../runtime/ns-pin.js';
import { unmountShm } from '../runtime/pod-files.js';
import { removeNetns } from '../network/netns.js';
import { after } from '../host/long-timer.js';
import { OciRuntime } from '../runtime/oci-runtime.js';
import type { Faults } from './faults.js';

/** How long a failed job waits before its next attempt. */
const RETRY_MS = 30_000;

export interface JanitorDeps {
  store: Store;
  logger: Logger;
  images: Pick<ImageService, 'removeRootfs' | 'collectDangling'>;
  /** The images live containers use: a removed container's may now be collected. */
  imagesInUse: () => Set<string>;
  faults: Faults;
}

/** The steps of a job, each idempotent: a second run after a crash finds them done. */
async function runJob(deps: JanitorDeps, job: CleanupJob): Promise<void> {
  if (job.kind === 'container') {
    const rt = job.runtimeState;
    if (rt) await new OciRuntime(rt.binary, rt.root, rt.systemdCgroup).delete(job.id);
    await deps.images.removeRootfs(job.rootfsDir);
    deps.faults.hit('cleanup.container.unmounted');
    await unpinNamespaces(job.nsDir);
  } else {
    await unmountShm(job.shm);
    deps.faults.hit('cleanup.sandbox.unmounted');
    await unpinNamespaces(job.nsDir);
    if (job.netns) await removeNetns(job.netns);
  }
  for (const dir of job.dirs) await rm(dir, { recursive: true, force: true });
  if (job.kind === 'container') await deps.images.collectDangling(deps.imagesInUse());
}

export class Janitor {
  private readonly queue = new Map<string, CleanupJob>();
  private running: Promise<void> | null = null;
  private readonly active = new Set<string>();
  /** Jobs worked at once: each mostly waits on umount and rm, so a few overlap well. */
  private readonly concurrency = 4;
  private readonly retries = new Map<string, () => void>();
  private stopped = false;

  constructor(private readonly deps: JanitorDeps) {}

  /**
   * Writes the job (throws StoreWriteFailed when the database refuses it: the removal then
   * fails, and its retry writes it again), then runs it in the background.
   */
  add(job: CleanupJob): void {
    this.deps.store.cleanup.add(job);
    this.enqueue(job);
  }

  /** At start: every job a previous run left (a crash, a failure). */
  resume(): void {
    for (const { job } of this.deps.store.cleanup.list()) this.enqueue(job);
  }

  /**
   * A removal's cleanup: queued when the janitor has a free worker, so the removal answers
   * before its unmounts and deletes; done right here, before the removal answers, when `inline`
   * (a rollback, whose failed call should find nothing left) or when every worker is busy. Under
   * sustained load queued jobs would fall ever further behind the replies and leave mounts piling
   * up (every mount check then slows down): inline work is what synchronous removal was, with no
   * job row, since the actor's own row (REMOVING) is the intent until it is done. A failure of
   * inline work is the caller's, as it was; of a queued job, the janitor's to log and retry.
   */
  async clean(job: CleanupJob, inline: boolean): Promise<void> {
    if (inline || this.queue.size + this.active.size >= this.concurrency) return runJob(this.deps, job);
    this.add(job);
  }

  /** Resolves when the queue is empty (retries waiting do not count). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Graceful shutdown: the queue is worked through, within `timeoutMs`; what is left waits for the next start. */
  async finish(timeoutMs: number): Promise<void> {
    let cancel = (): void => undefined;
    const timedOut = new Promise<void>((resolve) => (cancel = after(timeoutMs, resolve)));
    await Promise.race([this.idle(), timedOut]);
    cancel();
    this.stop();
  }

  stop(): void {
    this.stopped = true;
    for (const cancel of this.retries.values()) cancel();
    this.retries.clear();
  }

  private enqueue(job: CleanupJob): void {
    if (this.stopped) return;
    this.retries.get(job.id)?.();
    this.retries.delete(job.id);
    this.queue.set(job.id, job);
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Works the queue with `concurrency` workers, until it is empty. */
  private async drain(): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        // Never the same job twice at once (a restore and a retry may both queue it).
        const next = [...this.queue].find(([id]) => !this.active.has(id));
        if (!next || this.stopped) return;
        const [id, job] = next;
        this.queue.delete(id);
        this.active.add(id);
        try {
          await this.work(id, job);
        } finally {
          this.active.delete(id);
        }
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
  }

  private async work(id: string, job: CleanupJob): Promise<void> {
    try {
      await runJob(this.deps, job);
      this.deps.store.cleanup.done(id);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.deps.logger.warn({ [job.kind === 'container' ? 'containerId' : 'sandboxId']: id, left: job, err: message }, `cleanup after the removal of ${job.kind} ${id} failed; what is listed is left on the host, retried in ${RETRY_MS / 1000} s`);
      try {
        this.deps.store.cleanup.failed(id, message);
      } catch {
        // the database refuses writes: the job row stays as it was, and the retry still runs
      }
      const retry = after(RETRY_MS, () => {
        this.retries.delete(id);
        this.enqueue(job);
      });
      this.retries.set(id, retry);
    }
  }
}
