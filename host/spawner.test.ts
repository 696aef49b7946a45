/** The spawner helper runs real programs: output, input, deadlines, process groups, its own death. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { spawnProgram, startProgram } from './spawner.js';
import { run } from './exec.js';
import { processStartTime } from './process.js';

test('a program runs in the helper, not in this process, and its output and exit code come back', async () => {
  const r = await spawnProgram({ file: 'sh', args: ['-c', 'echo out; echo err >&2; echo $PPID; exit 3'], timeoutMs: 10_000 });
  assert.equal(r.code, 3);
  const [out, parent] = r.stdout.trim().split('\n');
  assert.equal(out, 'out');
  assert.equal(r.stderr, 'err\n');
  assert.notEqual(Number(parent), process.pid, 'forked by the helper');
  const helperCmd = await readFile(`/proc/${parent}/cmdline`, 'utf8');
  assert.match(helperCmd, /spawner-child\.js/);
});

test('input reaches stdin, and env replaces the environment when given', async () => {
  const r = await spawnProgram({ file: 'sh', args: ['-c', 'cat; echo "[$ONLY]"; env | wc -l'], input: 'hello ', env: { ONLY: 'this', PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, timeoutMs: 10_000 });
  const [first, count] = r.stdout.trim().split('\n');
  assert.equal(first, 'hello [this]');
  assert.ok(Number(count) <= 4, `a clean environment, got ${count} variables`);
});

test('a program past its deadline is killed; in a process group, with what it started', async () => {
  const started = Date.now();
  const r = await spawnProgram({ file: 'sh', args: ['-c', 'sleep 60 & echo $!; wait'], timeoutMs: 300, processGroup: true });
  assert.equal(r.timedOut, true);
  assert.ok(Date.now() - started < 10_000, 'answered soon after the deadline');
  const sleeper = Number(r.stdout.trim());
  assert.ok(sleeper > 0);
  const deadline = Date.now() + 5_000;
  while ((await processStartTime(sleeper)) !== null && Date.now() < deadline) await new Promise((res) => setImmediate(res));
  assert.equal(await processStartTime(sleeper), null, 'the background sleep was killed with its group');
});

test('byte output: stdout and stderr share one budget, kept as bytes, the rest counted', async () => {
  // 6 bytes of stdout (two not UTF-8), then 6 of stderr: a budget of 8 keeps all of stdout and 2 of stderr.
  const r = await spawnProgram({ file: 'sh', args: ['-c', "printf 'ab\\377\\376cd'; sleep 0.1; printf 'efghij' >&2"], timeoutMs: 10_000, byteBudget: 8 });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  assert.ok(r.bytes);
  assert.deepEqual(Buffer.from(r.bytes.stdout), Buffer.from([0x61, 0x62, 0xff, 0xfe, 0x63, 0x64]));
  assert.equal(Buffer.from(r.bytes.stderr).toString(), 'ef');
  assert.deepEqual(r.bytes.dropped, { stdout: 0, stderr: 4 });
});

test('a started program reports its pid first, and a signal reaches it alone', async () => {
  const program = startProgram({ file: 'sh', args: ['-c', 'trap "echo got-usr1; exit 7" USR1; while :; do sleep 0.05; done'], timeoutMs: 30_000, reportPid: true });
  const pid = await program.pid;
  assert.ok(pid !== null && pid > 0);
  assert.match(await readFile(`/proc/${pid}/cmdline`, 'utf8'), /^sh\0-c/);
  // The trap is set once sh runs its script: signal until it answers (a signal before that ends sh).
  const deadline = Date.now() + 10_000;
  let r = null;
  while (r === null && Date.now() < deadline) {
    program.signal('SIGUSR1');
    r = await Promise.race([program.done, new Promise<null>((res) => setTimeout(() => res(null), 50))]);
  }
  assert.ok(r, 'the program ended after the signal');
  assert.equal(r.canceled, false);
  assert.equal(r.timedOut, false);
  if (r.code === 7) assert.equal(r.stdout, 'got-usr1\n');
  else assert.equal(r.signal, 'SIGUSR1', 'killed by the signal before its trap was set');
});

test('a program that cannot start reports no pid, and says why', async () => {
  const program = startProgram({ file: '/no/such/program', args: [], timeoutMs: 10_000, reportPid: true });
  const r = await program.done;
  assert.equal(await program.pid, null);
  assert.match(r.spawnError ?? '', /ENOENT/);
});

test('a cancel stops the program', async () => {
  const ac = new AbortController();
  const pending = spawnProgram({ file: 'sleep', args: ['60'], timeoutMs: 60_000 }, ac.signal);
  ac.abort();
  const r = await pending;
  assert.equal(r.canceled, true);
  assert.equal(r.signal, 'SIGTERM');
});

test('a huge timeout does not fire early (no setTimeout overflow)', async () => {
  const r = await spawnProgram({ file: 'sleep', args: ['0.2'], timeoutMs: 2_147_484_000 });
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 0);
});

test('run(): a missing program and a failing one give actionable errors; allowFailure returns them', async () => {
  await assert.rejects(run('/no/such/program', ['x']), /\/no\/such\/program x failed \(cannot start it: .*ENOENT/);
  await assert.rejects(run('sh', ['-c', 'echo why >&2; exit 2']), /sh -c .* failed \(exit code 2\): why/);
  const r = await run('sh', ['-c', 'echo why >&2; exit 2'], { allowFailure: (x) => x.stderr === 'why' });
  assert.equal(r.exitCode, 2);
  assert.equal((await run('echo', ['a b'])).stdout, 'a b', 'one trailing newline off');
});

test('the helper dying fails what was in flight, and the next call starts a new one', async () => {
  const victim = spawnProgram({ file: 'sh', args: ['-c', 'kill -9 $PPID; sleep 5'], timeoutMs: 10_000 });
  await assert.rejects(victim, /the spawner helper exited \(SIGKILL\); it may or may not have run/);
  const r = await spawnProgram({ file: 'true', args: [], timeoutMs: 10_000 });
  assert.equal(r.code, 0);
});
