/**
 * secureLogFile against real temp dirs: links, non-directories and non-regular files below the
 * log directory are refused in each walk, with the component named; what is missing is made only
 * by `create` (and directories by `reopen`); a log directory behind a link resolves to its target.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { Code } from '../errors/catalogue.js';
import { logFileOf, realLogDirectory, secureLogFile, UnsafeLogPath, type LogFile } from './log-path.js';

const base = mkdtempSync(join(tmpdir(), 'pc-logpath-'));
let root = '';
let outside = '';
after(() => rmSync(base, { recursive: true, force: true }));
beforeEach(() => {
  root = mkdtempSync(join(base, 'logs-'));
  outside = mkdtempSync(join(base, 'outside-'));
});

const at = (relative: string): LogFile => ({ root, relative });
const refused = (pattern: RegExp, code: number = Code.INVALID_ARGUMENT) => (err: unknown): boolean => {
  assert.ok(err instanceof UnsafeLogPath, String(err));
  assert.equal(err.code, code);
  assert.match(err.message, pattern);
  return true;
};

describe('secureLogFile', () => {
  test('create makes the directories and the file (0600); an existing regular file is kept', async () => {
    await secureLogFile(at('c/deeper/0.log'), 'create');
    const st = lstatSync(join(root, 'c/deeper/0.log'));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o777, 0o600);
    writeFileSync(join(root, 'c/deeper/0.log'), 'kept\n');
    await secureLogFile(at('c/deeper/0.log'), 'create');
    assert.equal(lstatSync(join(root, 'c/deeper/0.log')).size, 5);
  });

  test('check makes nothing, and passes what is not there yet', async () => {
    await secureLogFile(at('c/0.log'), 'check');
    await secureLogFile({ root: join(root, 'not-yet'), relative: 'c/0.log' }, 'check');
    assert.deepEqual(readdirSync(root), []);
  });

  for (const walk of ['check', 'create', 'reopen'] as const) {
    const code = walk === 'reopen' ? Code.FAILED_PRECONDITION : Code.INVALID_ARGUMENT;
    test(`${walk}: a link or a non-directory on the way, or a file that is a link or not regular, is refused`, async () => {
      symlinkSync(outside, join(root, 'sub'));
      await assert.rejects(secureLogFile(at('sub/x.log'), walk), refused(/^log_path "sub\/x\.log": "sub" is a symbolic link beneath/, code));
      await assert.rejects(secureLogFile(at('sub/new/x.log'), walk), refused(/"sub" is a symbolic link/, code));
      mkdirSync(join(root, 'a'));
      symlinkSync(outside, join(root, 'a/b'));
      await assert.rejects(secureLogFile(at('a/b/x.log'), walk), refused(/"a\/b" is a symbolic link/, code));
      writeFileSync(join(root, 'plain'), '');
      await assert.rejects(secureLogFile(at('plain/x.log'), walk), refused(/"plain" is not a directory/, code));
      execFileSync('mkfifo', [join(root, 'fifo'), join(root, 'fifo.log')]);
      await assert.rejects(secureLogFile(at('fifo/x.log'), walk), refused(/"fifo" is not a directory/, code));
      await assert.rejects(secureLogFile(at('fifo.log'), walk), refused(/"fifo\.log" is not a regular file/, code));
      symlinkSync(join(outside, 'newfile'), join(root, 'dangling.log'));
      await assert.rejects(secureLogFile(at('dangling.log'), walk), refused(/"dangling\.log" is a symbolic link/, code));
      writeFileSync(join(outside, 'existing'), 'precious');
      symlinkSync(join(outside, 'existing'), join(root, 'linked.log'));
      await assert.rejects(secureLogFile(at('linked.log'), walk), refused(/"linked\.log" is a symbolic link/, code));
      mkdirSync(join(root, 'adir.log'));
      await assert.rejects(secureLogFile(at('adir.log'), walk), refused(/"adir\.log" is not a regular file/, code));
      assert.deepEqual(readdirSync(outside).sort(), ['existing'], 'nothing was made outside');
      assert.equal(lstatSync(join(outside, 'existing')).size, 8);
    });
  }

  test('reopen makes missing directories, not the file, and refuses a .tmp that is a link', async () => {
    await secureLogFile(at('r/0.log'), 'reopen');
    assert.deepEqual(readdirSync(join(root, 'r')), []);
    symlinkSync(join(outside, 'victim'), join(root, 'r/0.log.tmp'));
    await assert.rejects(secureLogFile(at('r/0.log'), 'reopen'), refused(/"r\/0\.log\.tmp" is a symbolic link/, Code.FAILED_PRECONDITION));
    await secureLogFile(at('r/0.log'), 'create'); // create does not look at .tmp: conmon only opens it on a reopen
  });
});

describe('realLogDirectory and logFileOf', () => {
  test('a log directory behind a link resolves to its target; a missing one through its nearest ancestor', async () => {
    symlinkSync(outside, join(root, 'linked'));
    assert.equal(await realLogDirectory(join(root, 'linked')), outside);
    assert.equal(await realLogDirectory(join(root, 'linked/pods/p1')), join(outside, 'pods/p1'));
    writeFileSync(join(root, 'file'), '');
    await assert.rejects(realLogDirectory(join(root, 'file/p1')), refused(/log_directory ".*\/file\/p1" cannot be resolved/));
  });

  test('a record without logFile is split at the pod\'s log_directory, or at its own directory', () => {
    const logFile = { root: '/real/logs', relative: 'c/0.log' };
    assert.deepEqual(logFileOf({ logPath: '/var/log/pods/p/c/0.log', logFile }, '/var/log/pods/p'), logFile);
    assert.deepEqual(logFileOf({ logPath: '/var/log/pods/p/c/0.log' }, '/var/log/pods/p'), { root: '/var/log/pods/p', relative: 'c/0.log' });
    assert.deepEqual(logFileOf({ logPath: '/var/log/pods/p/c/0.log' }, undefined), { root: '/var/log/pods/p/c', relative: '0.log' });
    assert.equal(logFileOf({ logPath: '' }, '/var/log/pods/p'), null);
  });
});
