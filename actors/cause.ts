/**
 * Why an actor moved: the CRI call (method and call number) or "restore" whose event started it.
 * Carried with AsyncLocalStorage, so the CRI wrapper sets it once and every event sent while
 * serving that call is tagged, without threading it through each signature.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const storage = new AsyncLocalStorage<string>();

export function withCause<T>(cause: string, fn: () => T): T {
  return storage.run(cause, fn);
}

export function currentCause(): string | null {
  return storage.getStore() ?? null;
}
