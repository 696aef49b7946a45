/**
 * One process spawn per turn of the event loop. Node's spawn() forks the daemon synchronously
 * (libuv uses fork on Linux), and fork copies the page tables: about 1 ms at 50 MB of RSS, 10 ms
 * at 250 MB, measured here. Twenty lifecycles each starting runc, conmon or a CNI plugin in the
 * same turn made one stall of 100-300 ms, during which no CRI call was answered (issue 12, item
 * 10). Every spawn site awaits its turn first: spawns are spread over turns, and the I/O of other
 * calls is served between them. The spawn itself must follow the await synchronously.
 */
// Module state on purpose, the one place in the daemon (issue 13, item 5): the queue belongs to
// the process's event loop, not to a daemon instance. Every spawn in the process forks the same
// heap, so they must all share one queue; an instance per caller would let them stall it again.
const waiting: (() => void)[] = [];
let scheduled = false;

export function spawnTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    schedule();
  });
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  // setImmediate runs after the poll phase: the I/O that arrived meanwhile is served first.
  setImmediate(() => {
    scheduled = false;
    waiting.shift()?.();
    if (waiting.length > 0) schedule();
  });
}
