/**
 * Writing to one inspector event stream without buffering for a reader that does not keep up:
 * once more than `limit` bytes wait in Node's buffer (the kernel's socket buffers, several MB on
 * loopback, are already full by then), the stream is destroyed. Its page reconnects, as
 * EventSource does, and reloads what it missed.
 */
import type { Writable } from 'node:stream';

/** Returns the send function for `out`; `onDrop(backlogBytes)` is told once when it drops it. */
export function boundedSender(out: Writable, limit: number, onDrop: (backlogBytes: number) => void): (text: string) => void {
  return (text) => {
    if (out.destroyed) return;
    out.write(text);
    if (out.writableLength > limit) {
      onDrop(out.writableLength);
      out.destroy();
    }
  };
}
