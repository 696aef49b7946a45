import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { LATEST_VERSION, migrate, schemaVersion } from '../storage/migrations.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../storage/store.js';
import type { SandboxContext } from '../machines/sandbox.types.js';
import { age, main } from './podchart-cli.js';

const NGINX_ID = 'abc1' + 'f'.repeat(60);
const REDIS_ID = 'abc2' + 'e'.repeat(60);
const MINUTE_MS = 60_000;

function context(id: string, name: string, namespace: string, createdAgoMs: number, more: Partial<SandboxContext>): SandboxContext {
  const uid = `uid-${name}`;
  const podName = `k8s_POD_${name}_${namespace}_${uid}_0`;
  return {
    id,
    spec: {
      name: podName,
      metadata: { name, uid, namespace, attempt: 0 },
      hostname: name,
      logDirectory: `/var/log/pods/${namespace}_${name}_${uid}`,
      labels: { app: name },
      annotations: {},
      runtimeHandler: 'runc',
      runtimePath: '/usr/sbin/runc',
      dns: { servers: ['10.96.0.10'], searches: [`${namespace}.svc.cluster.local`], options: ['ndots:5'] },
      portMappings: [],
      cgroupParent: `/kubepods/besteffort/pod${uid}`,
      namespaces: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
      sysctls: {},
      oomScoreAdj: -998,
      shmSizeBytes: 64 * 1024 * 1024,
      rootDir: `/var/lib/podchart/pods/${id}`,
      stateDir: `/run/podchart/pods/${id}`,
      netnsPath: `/var/run/netns/cni-${id.slice(0, 8)}`,
      createdAt: (BigInt(Date.now() - createdAgoMs) * 1_000_000n).toString(),
    },
    pid: null,
    pidStartTime: null,
    exit: null,
    tornDown: true,
    stopTimeoutSec: 10,
    lastError: null,
    containerIds: [],
    containerPhases: {},
    network: null,
    resources: null,
    resourcesRequested: null,
    ...more,
  };
}

let root: string;

function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const out = { log: (s: string) => lines.stdout.push(s), error: (s: string) => lines.stderr.push(s) };
  return main(argv, out).then((code) => ({ code, stdout: lines.stdout.join('\n'), stderr: lines.stderr.join('\n') }));
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'podchart-cli-'));
  const store = new Store(join(root, 'podchart.db'));
  const t0 = Date.UTC(2025, 0, 1, 12, 0, 0);

  const nginx = context(NGINX_ID, 'nginx', 'default', 3.5 * MINUTE_MS, {});
  store.insertSandbox(NGINX_ID, nginx.spec.name, 'UNKNOWN', nginx);
  store.saveSandbox(NGINX_ID, 'PENDING.creating', nginx, { actorId: NGINX_ID, event: 'CREATE', from: 'UNKNOWN', to: 'PENDING.creating', at: t0, error: null });
  const running = { ...nginx, pid: 4242, pidStartTime: '987654', tornDown: false };
  store.saveSandbox(NGINX_ID, 'RUNNING', running, { actorId: NGINX_ID, event: 'createSandbox.done', from: 'PENDING.creating', to: 'RUNNING', at: t0 + 1000, error: null });

  const redis = context(REDIS_ID, 'redis', 'cache', 2 * 3600_000, {});
  store.insertSandbox(REDIS_ID, redis.spec.name, 'UNKNOWN', redis);
  const stopped = { ...redis, exit: { code: 137, at: '1735732800000000000' }, lastError: { code: 13, message: 'umount /run/podchart/pods/x/shm: device or resource busy' } };
  store.saveSandbox(REDIS_ID, 'STOPPED', stopped, { actorId: REDIS_ID, event: 'stopSandbox.error', from: 'STOPPING', to: 'STOPPED', at: t0, error: stopped.lastError.message });
  store.close();
});

after(() => rmSync(root, { recursive: true, force: true }));

test('pods lists both sandboxes with their states', async () => {
  const { code, stdout } = await run('pods', '--root', root);
  assert.equal(code, 0);
  const [header, ...rows] = stdout.split('\n');
  assert.match(header ?? '', /^POD ID\s+NAME\s+NAMESPACE\s+STATE\s+CRI\s+CREATED\s+PID\s+LAST ERROR$/);
  assert.equal(rows.length, 2);
  const nginx = rows.find((r) => r.startsWith(NGINX_ID.slice(0, 13) + ' ')) ?? '';
  const redis = rows.find((r) => r.startsWith(REDIS_ID.slice(0, 13) + ' ')) ?? '';
  assert.match(nginx, /\snginx\s+default\s+RUNNING\s+READY\s+3m ago\s+4242$/);
  assert.match(redis, /\sredis\s+cache\s+STOPPED\s+NOTREADY\s+2h ago\s+-\s+umount .*busy$/);
});

test('pods --json is a parseable array of the documented fields', async () => {
  const { code, stdout } = await run('pods', `--root=${root}`, '--json');
  assert.equal(code, 0);
  const pods = JSON.parse(stdout) as Record<string, unknown>[];
  assert.deepEqual(pods.map((p) => Object.keys(p).sort()), [0, 1].map(() => ['createdAt', 'exit', 'id', 'lastError', 'name', 'namespace', 'pid', 'state']));
  assert.deepEqual(pods.map((p) => [p['id'], p['name'], p['namespace'], p['state'], p['pid']]), [
    [NGINX_ID, 'nginx', 'default', 'RUNNING', 4242],
    [REDIS_ID, 'redis', 'cache', 'STOPPED', null],
  ]);
  assert.deepEqual(pods[1]?.['exit'], { code: 137, at: '1735732800000000000' });
});

test('inspect <unique prefix> shows state, context and history oldest first', async () => {
  const { code, stdout } = await run('inspect', 'abc1', '--root', root);
  assert.equal(code, 0);
  assert.match(stdout, new RegExp(`^ID:\\s+${NGINX_ID}$`, 'm'));
  assert.match(stdout, /^STATE:\s+RUNNING \(CRI READY\)$/m);
  assert.match(stdout, /^ {2}"pid": 4242,$/m);
  assert.ok(stdout.includes(`"netnsPath": "/var/run/netns/cni-abc1ffff"`), stdout);
  const history = stdout.split('\n').filter((l) => l.startsWith('  20'));
  assert.deepEqual(history, [
    '  2025-01-01T12:00:00.000Z  CREATE  UNKNOWN → PENDING.creating',
    '  2025-01-01T12:00:01.000Z  createSandbox.done  PENDING.creating → RUNNING',
  ]);
});

test('inspect resolves a name, honours --limit, and --json carries history and errors', async () => {
  const byName = await run('inspect', 'k8s_POD_nginx_default_uid-nginx_0', '--root', root, '--limit', '1');
  assert.equal(byName.code, 0);
  assert.ok(!byName.stdout.includes('  CREATE  '), byName.stdout);
  assert.ok(byName.stdout.includes('createSandbox.done  PENDING.creating → RUNNING'), byName.stdout);

  const byPodName = await run('inspect', 'redis', '--root', root);
  assert.equal(byPodName.code, 0);
  assert.match(byPodName.stdout, new RegExp(`^ID:\\s+${REDIS_ID}$`, 'm'));

  const json = await run('inspect', REDIS_ID, '--root', root, '--json');
  assert.equal(json.code, 0);
  const doc = JSON.parse(json.stdout) as { id: string; state: string; context: SandboxContext; history: { event: string; error: string | null }[] };
  assert.equal(doc.id, REDIS_ID);
  assert.equal(doc.state, 'STOPPED');
  assert.equal(doc.context.exit?.code, 137);
  assert.deepEqual(doc.history.map((t) => [t.event, t.error]), [['stopSandbox.error', doc.context.lastError?.message]]);
});

test('an ambiguous prefix is refused with the registry message', async () => {
  const { code, stdout, stderr } = await run('inspect', 'abc', '--root', root);
  assert.equal(code, 1);
  assert.equal(stdout, '');
  assert.match(stderr, /ambiguous/);
});

test('an unknown reference exits 1', async () => {
  const { code, stderr } = await run('inspect', 'zzz', '--root', root);
  assert.equal(code, 1);
  assert.match(stderr, /no pod sandbox or container matches "zzz"/);
});

test('explain says why, from the database alone: a ready pod, and one whose stop failed after its pause was killed', async () => {
  const ready = await run('explain', 'nginx', '--root', root);
  assert.equal(ready.code, 0, ready.stderr);
  assert.deepEqual(ready.stdout.split('\n'), [
    `pod sandbox ${NGINX_ID.slice(0, 13)} (k8s_POD_nginx_default_uid-nginx_0), RUNNING: Ready since 2025-01-01 12:00:01 UTC`,
    '  - pause process: pid 4242',
  ]);
  const stopped = await run('explain', 'redis', '--root', root, '--json');
  assert.equal(stopped.code, 0, stopped.stderr);
  const doc = JSON.parse(stopped.stdout) as { id: string; kind: string; state: string; summary: string; details: string[] };
  assert.equal(doc.id, REDIS_ID);
  assert.equal(doc.kind, 'sandbox');
  assert.equal(doc.summary, 'NotReady: stopped');
  assert.deepEqual(doc.details, [
    'the pause process exited with exit code 137 (SIGKILL: OOM-killed, or killed by someone) at 2025-01-01 12:00:00 UTC',
    'network torn down: the pause container deleted, CNI DEL done, netns and /dev/shm unmounted',
    'waiting for RemovePodSandbox',
    'last error: umount /run/podchart/pods/x/shm: device or resource busy (StopPodSandbox retries it)',
  ]);
  const unknown = await run('explain', 'zzz', '--root', root);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no pod sandbox or container matches "zzz"/);
  const none = await run('explain', '--root', root);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /explain takes one pod or container reference/);
});

test('a missing database exits 1 and says where it looked', async () => {
  const empty = join(root, 'nowhere');
  const { code, stderr } = await run('pods', '--root', empty);
  assert.equal(code, 1);
  assert.ok(stderr.includes(`no podchart state at ${join(empty, 'podchart.db')}: has podchartd ever run with --root ${empty}?`), stderr);
});

test('help, version and unknown commands', async () => {
  for (const argv of [[], ['help']]) {
    const help = await run(...argv);
    assert.equal(help.code, 0);
    for (const cmd of ['pods', 'inspect', 'version', 'help']) assert.match(help.stdout, new RegExp(`^ {2}${cmd}\\b`, 'm'));
  }
  const unknown = await run('frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"[\s\S]*Usage:/);

  const version = await run('version');
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^podchart \d+\.\d+\.\d+\nCRI API: v1/);
});

test('age is humane', () => {
  const now = Date.UTC(2025, 0, 1);
  const ns = (msAgo: number) => (BigInt(now - msAgo) * 1_000_000n).toString();
  assert.equal(age(ns(5_000), now), '5s ago');
  assert.equal(age(ns(3 * MINUTE_MS + 59_000), now), '3m ago');
  assert.equal(age(ns(47 * 3600_000), now), '47h ago');
  assert.equal(age(ns(3 * 86400_000), now), '3d ago');
  assert.equal(age(undefined, now), '-');
});

test('a pod name shared by two sandboxes (two attempts) is ambiguous', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-cli-'));
  try {
    const store = new Store(join(dir, 'podchart.db'));
    for (const [id, attempt] of [['1'.repeat(64), 0], ['2'.repeat(64), 1]] as const) {
      const c = context(id, 'web', 'default', MINUTE_MS, {});
      c.spec.metadata.attempt = attempt;
      c.spec.name = `k8s_POD_web_default_uid-web_${attempt}`;
      store.insertSandbox(id, c.spec.name, 'STOPPED', c);
    }
    store.close();
    const { code, stderr } = await run('inspect', 'web', '--root', dir);
    assert.equal(code, 1);
    assert.match(stderr, /pod name "web" is ambiguous: it matches 2 sandboxes \(111111111111, 222222222222\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('chart prints a chart as Mermaid, from the machine definition', async () => {
  const lines: string[] = [];
  const code = await main(['chart', 'sandbox'], { log: (l: string) => lines.push(l), error: (l: string) => lines.push(l) });
  assert.equal(code, 0);
  const text = lines.join('\n');
  assert.match(text, /^stateDiagram-v2/);
  assert.match(text, /RUNNING --> STOPPING : STOP/);
  const bad: string[] = [];
  assert.equal(await main(['chart', 'pod'], { log: (l: string) => bad.push(l), error: (l: string) => bad.push(l) }), 2);
  assert.match(bad.join('\n'), /chart takes "sandbox" or "container"/);
});

/** What must not change when the CLI reads: the file's identity, size, time and content. */
function fingerprint(file: string): { ino: number; size: number; mtimeMs: number; sha: string } | null {
  if (!existsSync(file)) return null;
  const st = statSync(file);
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, sha: createHash('sha256').update(readFileSync(file)).digest('hex') };
}

function withRoot(fn: (dir: string, db: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-cli-ro-'));
  return fn(dir, join(dir, 'podchart.db')).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('the CLI only reads: the database and its WAL are unchanged while the daemon holds them open', () =>
  withRoot(async (dir, db) => {
    const daemon = new Store(db); // the running daemon's connection
    try {
      const pod = context(NGINX_ID, 'nginx', 'default', MINUTE_MS, {});
      daemon.insertSandbox(NGINX_ID, pod.spec.name, 'UNKNOWN', pod);
      daemon.saveSandbox(NGINX_ID, 'RUNNING', pod, { actorId: NGINX_ID, event: 'CREATE', from: 'UNKNOWN', to: 'RUNNING', at: 1, error: null });
      const before = [fingerprint(db), fingerprint(`${db}-wal`)];
      assert.ok(before[1] && before[1].size > 0, 'the test needs a WAL with frames in it');
      for (const argv of [['pods'], ['pods', '--json'], ['inspect', 'nginx'], ['inspect', NGINX_ID.slice(0, 6), '--json']]) {
        const { code, stderr } = await run(...argv, '--root', dir);
        assert.equal(code, 0, `${argv.join(' ')}: ${stderr}`);
      }
      assert.deepEqual([fingerprint(db), fingerprint(`${db}-wal`)], before);
    } finally {
      daemon.close();
    }
    // The daemon down: the database file is still untouched (SQLite's WAL reader makes an empty -wal).
    const before = fingerprint(db);
    assert.equal((await run('pods', '--root', dir)).code, 0);
    assert.deepEqual(fingerprint(db), before);
  }));

test('the CLI never migrates: an older schema is left as it is, and said so', () =>
  withRoot(async (dir, db) => {
    const old = new BetterSqlite3(db);
    old.pragma('journal_mode = WAL');
    migrate(old, LATEST_VERSION - 1);
    old.close();
    const before = fingerprint(db);
    const { code, stderr } = await run('pods', '--root', dir);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`written by an older podchart \\(schema ${LATEST_VERSION - 1}, this CLI knows ${LATEST_VERSION}\\)`));
    assert.deepEqual(fingerprint(db), before, 'the CLI changed the database');
    const check = new BetterSqlite3(db, { readonly: true });
    assert.equal(schemaVersion(check), LATEST_VERSION - 1);
    check.close();
  }));

test('a schema newer than the CLI is a clear error', () =>
  withRoot(async (dir, db) => {
    new Store(db).close();
    const newer = new BetterSqlite3(db);
    newer.pragma(`user_version = ${LATEST_VERSION + 1}`);
    newer.close();
    const before = fingerprint(db);
    const { code, stderr } = await run('inspect', 'x', '--root', dir);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `podchart: the database was written by a newer podchart (schema ${LATEST_VERSION + 1}, this CLI knows ${LATEST_VERSION}): use the podchart shipped with the running daemon`,
    );
    assert.deepEqual(fingerprint(db), before);
  }));
