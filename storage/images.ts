/** Image records: one row per image (id = config digest) and its repo tags and repo digests. */
import type { Database, Statement } from 'better-sqlite3';
import { statementCache } from './statements.js';

export interface LayerRecord {
  /** Compressed blob digest, as in the manifest. */
  digest: string;
  /** Uncompressed digest, as in the config's rootfs.diff_ids: the layer store's key. */
  diffId: string;
  size: number;
  mediaType: string;
}

export interface ImageRecord {
  id: string;
  manifestDigest: string;
  size: number;
  /** The image config JSON, verbatim. */
  config: string;
  layers: LayerRecord[];
  pulledAt: number;
  repoTags: string[];
  repoDigests: string[];
}

interface ImageRow {
  id: string;
  manifest_digest: string;
  size: number;
  config: string;
  layers: string;
  pulled_at: number;
}

/** Runs one write transaction (Store.write: a failed write is remembered and thrown as UNAVAILABLE). */
export type WriteTransaction = <T>(fn: () => T) => T;

export class ImageTable {
  private readonly sql: (text: string) => Statement;

  constructor(
    db: Database,
    private readonly write: WriteTransaction = (fn) => db.transaction(fn)(),
  ) {
    this.sql = statementCache(db);
  }

  /**
   * Records a pulled image and points `tag` and `repoDigest` at it, atomically. A tag that named
   * another image moves here (the other image keeps its other refs).
   */
  put(image: Omit<ImageRecord, 'repoTags' | 'repoDigests'>, refs: { tag: string | null; repoDigest: string }): void {
    this.write(() => {
      this.sql(
          `INSERT INTO images (id, manifest_digest, size, config, layers, pulled_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, pulled_at = excluded.pulled_at`,
        )
        .run(image.id, image.manifestDigest, image.size, image.config, JSON.stringify(image.layers), image.pulledAt);
      const upsert = this.sql(
        'INSERT INTO image_refs (ref, kind, image_id) VALUES (?, ?, ?) ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id',
      );
      if (refs.tag) upsert.run(refs.tag, 'tag', image.id);
      upsert.run(refs.repoDigest, 'digest', image.id);
    });
  }

  get(id: string): ImageRecord | null {
    const row = this.sql('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
    return row ? this.toRecord(row) : null;
  }

  /** The image a repo tag or repo digest names. */
  byRef(ref: string): ImageRecord | null {
    const id = this.sql('SELECT image_id FROM image_refs WHERE ref = ?').pluck().get(ref) as string | undefined;
    return id ? this.get(id) : null;
  }

  /** Ids starting with `prefix` (with or without "sha256:"). */
  idsWithPrefix(prefix: string): string[] {
    const full = prefix.startsWith('sha256:') ? prefix : `sha256:${prefix}`;
    return this.sql("SELECT id FROM images WHERE substr(id, 1, ?) = ?").pluck().all(full.length, full) as string[];
  }

  list(): ImageRecord[] {
    return (this.sql('SELECT * FROM images ORDER BY pulled_at').all() as ImageRow[]).map((r) => this.toRecord(r));
  }

  /** Removes one ref; returns how many refs the image has left. */
  removeRef(ref: string): number {
    const id = this.sql('SELECT image_id FROM image_refs WHERE ref = ?').pluck().get(ref) as string | undefined;
    if (!id) return 0;
    this.write(() => this.sql('DELETE FROM image_refs WHERE ref = ?').run(ref));
    return this.sql('SELECT count(*) FROM image_refs WHERE image_id = ?').pluck().get(id) as number;
  }

  /** Forgets an image and all its refs. */
  delete(id: string): void {
    this.write(() => {
      this.sql('DELETE FROM image_refs WHERE image_id = ?').run(id);
      this.sql('DELETE FROM images WHERE id = ?').run(id);
    });
  }

  private toRecord(row: ImageRow): ImageRecord {
    const refs = this.sql('SELECT ref, kind FROM image_refs WHERE image_id = ? ORDER BY ref').all(row.id) as { ref: string; kind: string }[];
    return {
      id: row.id,
      manifestDigest: row.manifest_digest,
      size: row.size,
      config: row.config,
      layers: JSON.parse(row.layers) as LayerRecord[],
      pulledAt: row.pulled_at,
      repoTags: refs.filter((r) => r.kind === 'tag').map((r) => r.ref),
      repoDigests: refs.filter((r) => r.kind === 'digest').map((r) => r.ref),
    };
  }
}
