/**
 * A tty exec's output, made deterministic. runc in the foreground keeps OPOST|ONLCR on its own
 * terminal (containerd/console's raw mode does) and clears ONLCR on the container's console once
 * it holds it, so each newline becomes \r\n once, on our side. Output written before runc clears
 * it is translated twice: \r\r\n, in about one exec in six under load (CRI-O has the same race).
 * A carriage return repeated means nothing more to a terminal than one, so a run of them before a
 * newline is folded into one: the bytes are then the same however the race went.
 */
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;

/** Folds every run of \r before \n into one \r; a run at a chunk's end waits for the next chunk. */
export function foldCarriageReturns(): Transform {
  let held = 0; // carriage returns at the end of the last chunk, not yet passed on
  const crs = (n: number): Buffer => Buffer.alloc(n, CR);
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      const out: number[] = [];
      let run = held;
      for (const byte of chunk) {
        if (byte === CR) {
          run++;
          continue;
        }
        if (run > 0) {
          const keep = byte === LF ? 1 : run;
          for (let i = 0; i < keep; i++) out.push(CR);
          run = 0;
        }
        out.push(byte);
      }
      held = run;
      callback(null, Buffer.from(out));
    },
    flush(callback: TransformCallback) {
      callback(null, held > 0 ? crs(held) : null);
    },
  });
}
