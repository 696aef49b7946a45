/** For the image tests: a tar built entry by entry from raw tar-stream headers. */
import { pack, type Header } from 'tar-stream';

export type Spec = Partial<Header> & { name: string; body?: string | Buffer };

/** A tar of `specs`, in order. Only regular files carry a body. */
export async function tarOf(specs: Spec[]): Promise<Buffer> {
  const p = pack();
  const out = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of p) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const { body, ...header } of specs) {
    if (header.type === undefined || header.type === 'file') p.entry(header, body ?? '');
    else p.entry(header);
  }
  p.finalize();
  return out;
}
