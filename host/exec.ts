/** Every external program runs through here: one place that turns a failure into an actionable error. */
import { execa, type Options } from 'execa';
import { EffectFailed } from '../errors/catalogue.js';
import { spawnTurn } from './spawn-turn.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The last lines of a program's stderr, enough for a person to act on. */
export function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/**
 * Runs a program to completion. Throws EffectFailed naming the command and its stderr tail,
 * unless `allowFailure` says which failures are expected (then it returns them).
 */
export async function run(
  file: string,
  args: readonly string[],
  options: { allowFailure?: (r: RunResult) => boolean; timeoutMs?: number; input?: string; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const execaOptions: Options = {
    reject: false,
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    timeout: options.timeoutMs ?? 60_000,
    ...(options.input === undefined ? {} : { input: options.input }),
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  };
  await spawnTurn();
  const result = await execa(file, args, execaOptions);
  const r: RunResult = {
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    exitCode: result.exitCode ?? -1,
  };
  if (result.failed && !(options.allowFailure?.(r) ?? false)) {
    const why = result.timedOut ? `timed out after ${execaOptions.timeout} ms` : `exit code ${r.exitCode}`;
    const detail = tail(r.stderr || r.stdout || result.shortMessage || '');
    throw new EffectFailed(`${file} ${args.join(' ')} failed (${why}): ${detail}`);
  }
  return r;
}
