/**
 * ImageFsInfo's numbers without walking the store on every call. kubelet polls ImageFsInfo every
 * few seconds, and a walk of every layer takes seconds on a busy node (25 s median under 50
 * lifecycle clients), so a poll is answered from memory: after a pull or removal the next call
 * waits for one fresh walk (the numbers must follow a change at once); otherwise a value older
 * than `maxAgeMs` is returned while one walk refreshes it in the background.
 */
export interface Usage {
  bytes: number;
  inodes: number;
}

export class UsageCache {
  private value: Usage | null = null;
  private at = 0;
  private dirty = true;
  private walking: Promise<Usage> | null = null;

  constructor(
    private readonly walk: () => Promise<Usage>,
    private readonly maxAgeMs = 30_000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The store changed: the next read waits for a walk that starts after this. */
  changed(): void {
    this.dirty = true;
  }

  async get(): Promise<Usage> {
    if (this.dirty || this.value === null) return this.refresh();
    if (this.now() - this.at > this.maxAgeMs) void this.refresh().catch(() => undefined); // the old value stands
    return this.value;
  }

  /** One walk at a time; a change during a walk makes the next read walk again. */
  private refresh(): Promise<Usage> {
    if (this.walking && !this.dirty) return this.walking;
    this.dirty = false;
    const started = (this.walking ?? Promise.resolve(null)).catch(() => null).then(() => this.walk());
    const walk = started.then(
      (value) => {
        this.value = value;
        this.at = this.now();
        return value;
      },
      (err: unknown) => {
        this.dirty = true;
        throw err;
      },
    );
    this.walking = walk;
    void walk.finally(() => {
      if (this.walking === walk) this.walking = null;
    }).catch(() => undefined);
    return walk;
  }
}
