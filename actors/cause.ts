/**
 * Why an actor moved: the CRI call (method and call number) or "restore" whose event started it.
 * Carried with AsyncLocalStorage, so the CRI wrapper sets it once and every event sent while
 * serving that call is tagged, without threading it through each signature. One instance per
 * daemon, in its Deps (no module state).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export class Causes {
  private readonly storage = new AsyncLocalStorage<string>();

  /** Runs fn with `cause` as the cause of every event it sends, also after its awaits. */
  with<T>(cause: string, fn: () => T): T {
    return this.storage.run(cause, fn);
  }

  current(): string | null {
    return this.storage.getStore() ?? null;
  }
}
