/**
 * A real terminal for the tty tests: a tmux server of the test's own (its own socket, in the test's
 * temp dir, and no config file), one detached session running a command on a pty tmux owns, keys typed into it and
 * the screen read back. tmux gives the command a terminal of a set size and changes it on
 * `resize-window`, which is what a user's terminal does to crictl (SIGWINCH).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { eventually } from './daemon.js';

const run = promisify(execFile);

export const TMUX = '/usr/bin/tmux';

/** node:test's skip option: false when tmux is here, else the reason. */
export const needsTmux: false | string = existsSync(TMUX) ? false : `tmux not found at ${TMUX}`;

export class Tmux {
  private started = false;

  /** `socket`: the server's socket path (`tmux -S`; tmux leaves it behind, so in a temp dir). */
  constructor(readonly socket: string) {}

  private async tmux(...args: string[]): Promise<string> {
    const { stdout } = await run(TMUX, ['-S', this.socket, '-f', '/dev/null', ...args]);
    return stdout;
  }

  /**
   * Starts `command` (a shell command line) in a detached session of `width` × `height`. The pane
   * stays once the command has exited (remain-on-exit), so what it printed last can be read.
   */
  async start(command: string, width = 100, height = 30): Promise<void> {
    await this.tmux('new-session', '-d', '-x', String(width), '-y', String(height), command, ';', 'set-option', '-g', 'remain-on-exit', 'on');
    this.started = true;
  }

  /** Types `text` and Enter. */
  async type(text: string): Promise<void> {
    await this.tmux('send-keys', '-l', text);
    await this.tmux('send-keys', 'Enter');
  }

  /** The pane's whole text (history too), wrapped lines joined. */
  screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-J', '-S', '-');
  }

  /** Polls the screen until it matches `pattern` (how many times it must appear: `count`). */
  async until(pattern: RegExp, count = 1, timeoutMs = 20_000): Promise<string> {
    const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
    let last = '';
    try {
      return await eventually(`the terminal to show ${String(pattern)}${count > 1 ? ` ${count} times` : ''}`, async () => {
        last = await this.screen();
        return (last.match(global)?.length ?? 0) >= count ? last : null;
      }, timeoutMs);
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; the screen:\n${last}`);
    }
  }

  async resize(width: number, height: number): Promise<void> {
    await this.tmux('resize-window', '-x', String(width), '-y', String(height));
  }

  /** The pid of the command the pane runs (tmux's child). */
  async panePid(): Promise<number> {
    return Number.parseInt((await this.tmux('display-message', '-p', '#{pane_pid}')).trim(), 10);
  }

  /** Whether the pane's command has exited. */
  async paneDead(): Promise<boolean> {
    return (await this.tmux('display-message', '-p', '#{pane_dead}')).trim() === '1';
  }

  /** Ends this tmux server (its pane's command gets SIGHUP). */
  async kill(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.tmux('kill-server').catch(() => undefined); // already gone with its last session
  }
}
