/**
 * runc / crun, called as binaries (both share the CLI). Each runtime keeps its state under its own
 * root in our run dir, so we never see containers of another engine. Calls that undo something are
 * idempotent: "does not exist" is success.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from '../host/exec.js';

export type OciStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface OciState {
  id: string;
  pid: number;
  status: OciStatus;
}

const notExist = (r: RunResult): boolean => /does not exist|not found|No such file/i.test(r.stderr + r.stdout);

export class OciRuntime {
  constructor(
    readonly binary: string,
    readonly root: string,
    readonly systemdCgroup = false,
  ) {}

  /** Global flags, placed before the subcommand. */
  globalArgs(): string[] {
    return [`--root=${this.root}`, ...(this.systemdCgroup ? ['--systemd-cgroup'] : [])];
  }

  /**
   * Whether the runtime keeps state for `id`: runc and crun both hold it in the dir <root>/<id>,
   * made by `create` and removed by `delete`. Checked before the calls that only undo, so a pod
   * or container with nothing to undo costs no spawn (issue 14: each one is a few ms).
   */
  hasState(id: string): boolean {
    return id !== '' && !id.includes('/') && existsSync(join(this.root, id));
  }

  /** The container's state, or null when the runtime does not know it. */
  async state(id: string): Promise<OciState | null> {
    if (!this.hasState(id)) return null;
    const r = await run(this.binary, [...this.globalArgs(), 'state', id], { allowFailure: notExist });
    if (r.exitCode !== 0) return null;
    const parsed = JSON.parse(r.stdout) as { id: string; pid: number; status: OciStatus };
    return { id: parsed.id, pid: parsed.pid, status: parsed.status };
  }

  async start(id: string): Promise<void> {
    await run(this.binary, [...this.globalArgs(), 'start', id]);
  }

  /** Sends a signal; a container that is gone or already stopped is not an error. */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await run(this.binary, [...this.globalArgs(), 'kill', ...(all ? ['--all'] : []), id, signal], {
      allowFailure: (r) => notExist(r) || /not running|process already finished|container not running/i.test(r.stderr),
    });
  }

  /** Deletes the container's runtime state (and its cgroup); idempotent. */
  async delete(id: string, force = true): Promise<void> {
    if (!this.hasState(id)) return;
    await run(this.binary, [...this.globalArgs(), 'delete', ...(force ? ['--force'] : []), id], {
      allowFailure: notExist,
    });
  }
}
