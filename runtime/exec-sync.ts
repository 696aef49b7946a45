/**
 * ExecSync: run a command in a running container with the container's own process settings
 * (user, env, cwd, capabilities, no_new_privs), capture stdout and stderr apart up to a cap, and
 * kill the command when its timeout passes. child_process rather than execa: execa's maxBuffer
 * fails the call past the cap, while CRI wants the output truncated and the exit code kept.
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { DeadlineExceeded, EffectFailed } from '../errors/catalogue.js';
import type { OciRuntime } from './oci-runtime.js';

/** Each of stdout and stderr is capped here (what kubelet can take in one reply). */
export const EXEC_OUTPUT_CAP = 16 * 1024 * 1024;

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(kept);
    this.size += kept.length;
  }
  value(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export async function execSync(opts: {
  runtime: OciRuntime;
  id: string;
  bundle: string;
  workDir: string;
  cmd: string[];
  timeoutSec: number;
  cap?: number;
}): Promise<ExecSyncResult> {
  const spec = JSON.parse(await readFile(join(opts.bundle, 'config.json'), 'utf8')) as { process: Record<string, unknown> };
  const tag = randomBytes(6).toString('hex');
  const processFile = join(opts.workDir, `exec-${tag}.json`);
  const pidFile = join(opts.workDir, `exec-${tag}.pid`);
  await writeFile(processFile, JSON.stringify({ ...spec.process, args: opts.cmd, terminal: false }));
  const cap = opts.cap ?? EXEC_OUTPUT_CAP;
  const stdout = new CappedBuffer(cap);
  const stderr = new CappedBuffer(cap);
  const child = spawn(opts.runtime.binary, [...opts.runtime.globalArgs(), 'exec', '--process', processFile, '--pid-file', pidFile, opts.id], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  let timedOut = false;
  const timer =
    opts.timeoutSec > 0
      ? setTimeout(() => {
          timedOut = true;
          // Kill the command inside the container (runc cannot forward SIGKILL), then runc itself.
          void readFile(pidFile, 'utf8')
            .then((pid) => process.kill(Number.parseInt(pid, 10), 'SIGKILL'))
            .catch(() => undefined)
            .finally(() => child.kill('SIGKILL'));
        }, opts.timeoutSec * 1000)
      : null;
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve([c, s]));
    });
    if (timedOut) throw new DeadlineExceeded(`command ${JSON.stringify(opts.cmd)} timed out after ${opts.timeoutSec}s and was killed`);
    const out = stdout.value();
    const err = stderr.value();
    // runc's own failure (no such container, bad command) shows as exit 255 with runc's message on stderr.
    if (code === 255 && /runc|exec failed|OCI runtime/.test(err.toString()) && out.length === 0) {
      throw new EffectFailed(`exec in ${opts.id} failed: ${err.toString().trim().split('\n').slice(-3).join(' ')}`);
    }
    return { stdout: out, stderr: err, exitCode: code ?? (signal ? 128 + (osSignal(signal) ?? 0) : -1) };
  } finally {
    if (timer) clearTimeout(timer);
    await rm(processFile, { force: true });
    await rm(pidFile, { force: true });
  }
}

function osSignal(signal: NodeJS.Signals): number | undefined {
  return constants.signals[signal];
}
