/**
 * Fault points: named places between effects where the daemon can be made to die, for the
 * crash tests and the coming fault-injection suite. `PODCHART_FAULT=<point>` makes the daemon
 * SIGKILL itself the first time it reaches that point: a real kill -9, at an exact step.
 * Unset (always, in production), a fault point costs one string comparison.
 */
export type FaultPoint =
  | 'sandbox.create.files'
  | 'sandbox.create.netns'
  | 'sandbox.create.network'
  | 'sandbox.create.created'
  | 'sandbox.create.started'
  | 'sandbox.stop.killed'
  | 'sandbox.stop.network'
  | 'sandbox.remove.stopped'
  | 'sandbox.remove.netns'
  | 'sandbox.update.persisted'
  | 'container.create.rootfs'
  | 'container.start.created'
  | 'container.remove.killed'
  | 'cleanup.container.unmounted'
  | 'cleanup.sandbox.unmounted';

export interface Faults {
  hit(point: FaultPoint): void;
}

export function faultsFromEnv(env: NodeJS.ProcessEnv = process.env, onHit?: (point: FaultPoint) => void): Faults {
  const armed = env['PODCHART_FAULT'];
  if (!armed) return { hit: () => undefined };
  return {
    hit(point) {
      if (point !== armed) return;
      onHit?.(point);
      process.kill(process.pid, 'SIGKILL');
    },
  };
}
