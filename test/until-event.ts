/**
 * Waits on events, bounded by a deadline (itself an event: AbortSignal.timeout), for the tests'
 * processes: a log line written, a process exited. No polling, no sleeping.
 */
export function untilEvent<T>(
  what: string,
  timeoutMs: number,
  attach: (done: (value: T) => void, fail: (err: Error) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = AbortSignal.timeout(timeoutMs);
    let detach: () => void = () => undefined;
    const finish = (): void => {
      deadline.removeEventListener('abort', onDeadline);
      detach();
    };
    const onDeadline = (): void => {
      finish();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    };
    deadline.addEventListener('abort', onDeadline);
    detach = attach(
      (value) => {
        finish();
        resolve(value);
      },
      (err) => {
        finish();
        reject(err);
      },
    );
  });
}
