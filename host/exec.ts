/** Every external program runs through here: one place that turns a failure into an actionable error. */
import { EffectFailed } from '../errors/catalogue.js';
import { spawnProgram } from './spawner.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The last lines of a program's stderr, enough for a person to act on. */
export function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** One trailing newline off, as a shell's `$(…)` does: callers compare and parse the text. */
const chomp = (text: string): string => (text.endsWith('\n') ? text.slice(0, text.endsWith('\r\n') ? -2 : -1) : text);

/**
 * Runs a program to completion, through the spawner helper (host/spawner-child.ts: a fork from
 * the daemon itself would stop its event loop). Throws EffectFailed naming the command and its
 * stderr tail, unless `allowFailure` says which failures are expected (then it returns them).
 */
export async function run(
  file: string,
  args: readonly string[],
  options: { allowFailure?: (r: RunResult) => boolean; timeoutMs?: number; input?: string; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const result = await spawnProgram({ file, args, timeoutMs, ...(options.input === undefined ? {} : { input: options.input }) }, options.signal);
  const r: RunResult = {
    stdout: chomp(result.stdout),
    stderr: chomp(result.stderr),
    exitCode: result.code ?? -1,
  };
  const failed = result.code !== 0 || result.spawnError !== undefined;
  if (failed && !(options.allowFailure?.(r) ?? false)) {
    const why = result.spawnError
      ? `cannot start it: ${result.spawnError}`
      : result.timedOut
        ? `timed out after ${timeoutMs} ms`
        : result.canceled
          ? 'canceled'
          : result.signal
            ? `killed by ${result.signal}`
            : `exit code ${r.exitCode}`;
    const detail = tail(r.stderr || r.stdout);
    throw new EffectFailed(`${file} ${args.join(' ')} failed (${why})${detail ? `: ${detail}` : ''}`);
  }
  return r;
}
