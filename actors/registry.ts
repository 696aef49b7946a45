/**
 * The id/name registry of seed 000 §3.3: random 64-hex ids, names unique across pods and
 * containers, lookup by full id, by name, or by a unique id prefix. The database's names table is
 * the durable copy (and its UNIQUE constraint the last word); this is the in-memory index.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgument } from '../errors/catalogue.js';
import type { ActorKind, NameEntry } from '../storage/store.js';

export class Registry {
  private readonly byId = new Map<string, NameEntry>();
  private readonly byName = new Map<string, string>();
  /** Each kind's ids, built on the first ask after a change: every List call walks one (issue 14). */
  private readonly idsByKind = new Map<ActorKind, readonly string[]>();

  load(entries: readonly NameEntry[]): void {
    for (const e of entries) this.add(e);
  }

  add(entry: NameEntry): void {
    this.byId.set(entry.id, entry);
    this.byName.set(entry.name, entry.id);
    this.idsByKind.delete(entry.kind);
  }

  remove(id: string): void {
    const entry = this.byId.get(id);
    if (!entry) return;
    this.byId.delete(id);
    this.idsByKind.delete(entry.kind);
    if (this.byName.get(entry.name) === id) this.byName.delete(entry.name);
  }

  holderOf(name: string): NameEntry | undefined {
    const id = this.byName.get(name);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** A fresh random id, never equal to one in use. */
  newId(): string {
    for (;;) {
      const id = randomBytes(32).toString('hex');
      if (!this.byId.has(id)) return id;
    }
  }

  /**
   * Full id, then name, then unique id prefix; null when nothing matches.
   * An ambiguous prefix is an error that names the candidates.
   */
  resolve(ref: string, kind: ActorKind): string | null {
    const exact = this.byId.get(ref);
    if (exact) return exact.kind === kind ? exact.id : null;
    const named = this.holderOf(ref);
    if (named) return named.kind === kind ? named.id : null;
    if (!/^[0-9a-f]+$/.test(ref)) return null;
    const matches: string[] = [];
    for (const [id, entry] of this.byId) {
      if (entry.kind === kind && id.startsWith(ref)) matches.push(id);
    }
    if (matches.length > 1) {
      const shown = matches.slice(0, 3).map((id) => id.slice(0, 12)).join(', ');
      throw new InvalidArgument(
        `id prefix "${ref}" is ambiguous: it matches ${matches.length} ${kind === "sandbox" ? "pod sandboxes" : "containers"} (${shown}${matches.length > 3 ? ', …' : ''}); give more characters`,
      );
    }
    return matches[0] ?? null;
  }

  ids(kind: ActorKind): readonly string[] {
    let ids = this.idsByKind.get(kind);
    if (!ids) {
      ids = [...this.byId.values()].filter((e) => e.kind === kind).map((e) => e.id);
      this.idsByKind.set(kind, ids);
    }
    return ids;
  }
}
