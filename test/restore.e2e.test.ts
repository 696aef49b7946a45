/**
 * Restart and crash recovery, end to end (containerd's integration/restart_test.go idea): put pods
 * in a state, kill the real podchartd with SIGKILL (or at a fault point, where it SIGKILLs itself),
 * change the world while it is down, start it again, and check each pod against both the CRI and
 * the host (processes, mounts, runc, directories, database rows).
 *
 * Needs root, runc, conmon, catatonit and `ip netns`. One daemon for the whole file.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { Daemon, eventually, pausePodConfig, podConfig, PODCHARTD, REPO, tempPaths } from './daemon.js';
import {
  dbSandboxes,
  exitFileOf,
  forceCleanup,
  ipLeases,
  isMounted,
  leftovers,
  netnsFile,
  processesOf,
  rootDirOf,
  runcIds,
  runDirOf,
  shmOf,
  startTime,
} from './host-checks.js';

const execFileAsync = promisify(execFile);

const TIMEOUT = { timeout: 120_000 };
/** gRPC status codes a call gets when the daemon dies under it. */
const CONNECTION_LOST = new Set([14 /* UNAVAILABLE */, 13 /* INTERNAL: RST_STREAM */]);

const paths = tempPaths('pc-restore-');
const daemon = new Daemon(paths);
/** Every pod id this file has seen, for the last-resort cleanup. */
const ids = new Set<string>();
/** Whether the running daemon was started with a fault point armed. */
let armed = false;

interface ExitInfo {
  code: number;
  at: string;
}

interface VerboseInfo {
  pid: number | null;
  netnsPath: string | null;
  actorState: string;
  exit: ExitInfo | null;
  lastError: string | null;
  transitions: { event: string; from: string | null; to: string }[];
}

interface Status {
  state: string;
  info: VerboseInfo;
}

async function status(id: string): Promise<Status> {
  const reply = await daemon.cri.call<{ status: { state: string }; info: Record<string, string> }>('PodSandboxStatus', {
    podSandboxId: id,
    verbose: true,
  });
  const raw = reply.info['info'];
  assert.ok(raw, `verbose PodSandboxStatus of ${id} has no info`);
  return { state: reply.status.state, info: JSON.parse(raw) as VerboseInfo };
}

/** The pod's CRI state in ListPodSandbox, or null when it is not listed. */
async function listed(id: string): Promise<string | null> {
  const reply = await daemon.cri.call<{ items: { id: string; state: string }[] }>('ListPodSandbox', {});
  return reply.items.find((p) => p.id === id)?.state ?? null;
}

/** The host-local IP lease that names pod `id`, if any. */
function leaseOf(id: string): string | null {
  return ipLeases(join(paths.base, 'cni', 'ipam')).find((l) => l.owner === id)?.ip ?? null;
}

/** A pod with a pause process, whose restore these tests follow (test/pauseless.e2e.test.ts has the pod without one). */
async function runPod(name: string): Promise<{ id: string; pid: number; started: string }> {
  const reply = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: pausePodConfig(name) });
  const id = reply.podSandboxId;
  assert.match(id, /^[0-9a-f]{64}$/);
  ids.add(id);
  const { state, info } = await status(id);
  assert.equal(state, 'SANDBOX_READY');
  assert.equal(info.actorState, 'RUNNING');
  assert.ok(info.pid && info.pid > 1, `pod ${id} has no pause pid: ${JSON.stringify(info)}`);
  const started = startTime(info.pid);
  assert.ok(started, `pause process ${info.pid} of ${id} is not running`);
  // The host checks see a live pod (so an empty leftovers() later means something).
  const seen = leftovers(paths, id).map((l) => l.replace(/ \/.*| [0-9a-f]{64}$|^\d+ row\(s\) in /g, ''));
  for (const kind of ['netns mount', 'netns file', 'shm mount', 'run dir', 'root dir', 'runc container', 'cgroup', 'names', 'sandboxes', 'transitions']) {
    assert.ok(seen.includes(kind), `host checks do not see the ${kind} of running pod ${id}: ${JSON.stringify(seen)}`);
  }
  const procs = processesOf(id);
  assert.ok(procs.some((p) => p.cmdline.includes('conmon')), `no conmon seen for ${id}`);
  assert.ok(procs.some((p) => p.pid === info.pid), `pause process ${info.pid} not seen for ${id}: ${JSON.stringify(procs)}`);
  return { id, pid: info.pid, started };
}

function running(): boolean {
  return daemon.child !== null && daemon.exitCode === null;
}

/** kill -9 the daemon if it runs, then start it with `env` (no fault unless given). */
async function restart(env: NodeJS.ProcessEnv = {}): Promise<void> {
  if (running()) await daemon.kill9();
  armed = env['PODCHART_FAULT'] !== undefined;
  await daemon.start(env);
}

/**
 * Restarts the daemon armed with fault `point`, makes `call`, and checks that the daemon died of
 * SIGKILL while the call failed with a lost connection. (Not checked through the log: pino writes
 * asynchronously, so the "fault point reached" line is often lost with the process.) Each case
 * then checks on the host that the daemon died at that exact step.
 */
async function crashAt(point: string, call: () => Promise<unknown>): Promise<void> {
  await restart({ PODCHART_FAULT: point });
  const child = daemon.child;
  assert.ok(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await assert.rejects(call(), (err: Error & { code?: number }) => {
    assert.ok(CONNECTION_LOST.has(err.code ?? -1), `expected a lost connection, got ${err.message} (code ${err.code})`);
    return true;
  });
  await daemon.waitExit();
  assert.equal(await exited, 'SIGKILL', `podchartd was not killed at ${point}:\n${daemon.logs()}`);
}

/** Nothing of pod `id` is left on the host or in the database, and no process of it runs. */
async function assertGone(id: string): Promise<void> {
  await daemon.swept();
  assert.deepEqual(leftovers(paths, id), [], `pod ${id} left things behind`);
  await eventually(`no process of pod ${id} (conmon, pause) to be left: ${JSON.stringify(processesOf(id))}`, () => processesOf(id).length === 0, 5_000);
}

/** StopPodSandbox + RemovePodSandbox through the CRI, then nothing is left. */
async function stopRemoveAndCheck(id: string): Promise<void> {
  await daemon.cri.call('StopPodSandbox', { podSandboxId: id });
  const { state, info } = await status(id);
  assert.equal(state, 'SANDBOX_NOTREADY');
  assert.equal(info.actorState, 'STOPPED');
  // CRI stop: the namespace is unmounted, its file kept until remove.
  assert.equal(isMounted(netnsFile(id)), false, 'netns still mounted after stop');
  assert.equal(existsSync(netnsFile(id)), true, 'netns file deleted by stop');
  assert.equal(isMounted(shmOf(paths, id)), false, 'shm still mounted after stop');
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: id });
  assert.equal(await listed(id), null, `pod ${id} still listed after remove`);
  await assertGone(id);
}

function findRowByName(name: string): { id: string; state: string } {
  const rows = dbSandboxes(paths).filter((r) => (r.context['spec'] as { metadata?: { name?: string } } | undefined)?.metadata?.name === name);
  assert.equal(rows.length, 1, `expected one sandbox row for ${name}, got ${JSON.stringify(rows.map((r) => [r.id, r.state]))}`);
  const row = rows[0]!;
  ids.add(row.id);
  return { id: row.id, state: row.state };
}

describe('restore after restarts and crashes', () => {
  before(async () => {
    await daemon.start();
  });

  // Each case starts from a live daemon without a fault, whatever the previous case left.
  beforeEach(async () => {
    if (!running() || armed) await restart({});
  });

  after(async () => {
    try {
      // A test that failed may have left the daemon armed with a fault, or dead.
      await restart({});
      const reply = await daemon.cri.call<{ items: { id: string }[] }>('ListPodSandbox', {});
      for (const pod of reply.items) {
        ids.add(pod.id);
        try {
          await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod.id });
        } catch (err) {
          console.error(`cleanup: RemovePodSandbox ${pod.id}: ${String(err)}`);
        }
      }
      await daemon.stop();
    } catch (err) {
      console.error(`cleanup: ${String(err)}\n${daemon.logs().slice(-4000)}`);
    } finally {
      if (running()) daemon.child?.kill('SIGKILL');
      for (const row of dbSandboxes(paths)) ids.add(row.id);
      const runSandboxes = join(paths.run, 'sandboxes');
      if (existsSync(runSandboxes)) for (const id of readdirSync(runSandboxes)) ids.add(id);
      const forced = forceCleanup(paths, ids);
      if (forced.length) console.error(`cleanup had to force: ${forced.join('; ')}`);
      rmSync(paths.base, { recursive: true, force: true });
    }
  });

  test('1. a running pod survives kill -9 of the daemon, its pause process untouched', TIMEOUT, async () => {
    const pod = await runPod('survivor');
    const conmonPid = Number.parseInt(readFileSync(join(runDirOf(paths, pod.id), 'conmon.pid'), 'utf8'), 10);
    const conmonStarted = startTime(conmonPid);
    assert.ok(conmonStarted, `conmon ${conmonPid} is not running`);

    await daemon.kill9();
    assert.equal(startTime(pod.pid), pod.started, 'pause process changed while the daemon was down');

    await daemon.start();
    const { state, info } = await status(pod.id);
    assert.equal(state, 'SANDBOX_READY');
    assert.equal(info.actorState, 'RUNNING');
    assert.equal(info.pid, pod.pid);
    assert.equal(info.exit, null);
    assert.equal(await listed(pod.id), 'SANDBOX_READY');
    assert.equal(startTime(pod.pid), pod.started, 'the pause process was restarted or replaced');
    assert.equal(startTime(conmonPid), conmonStarted, 'conmon was restarted or replaced');
    assert.ok(isMounted(netnsFile(pod.id)), 'netns unmounted by the restore');
    assert.ok(isMounted(shmOf(paths, pod.id)), 'shm unmounted by the restore');
    assert.ok(runcIds(paths).includes(pod.id), 'runc forgot the pause container');

    await stopRemoveAndCheck(pod.id);
  });

  // A pod restored to RUNNING has an unchanged row; its exit watch must be armed all the same.
  test('1b. after a restore, an exit of the pause process is still noticed', TIMEOUT, async () => {
    const pod = await runPod('watched-after-restore');
    await daemon.kill9();
    await daemon.start();
    assert.equal((await status(pod.id)).state, 'SANDBOX_READY');
    process.kill(pod.pid, 'SIGKILL');
    await eventually(`pod ${pod.id} to become NOTREADY after its pause process was killed`, async () => (await listed(pod.id)) === 'SANDBOX_NOTREADY', 10_000);
    const { info } = await status(pod.id);
    assert.equal(info.actorState, 'STOPPED');
    assert.equal(info.exit?.code, 137);
    await stopRemoveAndCheck(pod.id);
  });

  test('2. pause died while the daemon was down: restored NOTREADY with its exit, then stop and remove leave nothing', TIMEOUT, async () => {
    const pod = await runPod('died-while-down');
    await daemon.kill9();
    process.kill(pod.pid, 'SIGKILL');
    const exitFile = exitFileOf(paths, pod.id);
    await eventually(`conmon to write ${exitFile}`, () => existsSync(exitFile) && /^\d+/.test(readFileSync(exitFile, 'utf8').trim()));
    assert.equal(readFileSync(exitFile, 'utf8').trim(), '137');
    assert.equal(startTime(pod.pid), null, 'the pause process is still alive');
    // Down, the database still says what the daemon last saw.
    assert.equal(findRowByName('died-while-down').state, 'RUNNING');

    await daemon.start();
    const { state, info } = await status(pod.id);
    assert.equal(state, 'SANDBOX_NOTREADY');
    assert.equal(info.actorState, 'STOPPED');
    assert.equal(info.exit?.code, 137);
    // The exit file is the source of truth: its mtime is the exit time.
    assert.equal(info.exit?.at, statSync(exitFile, { bigint: true }).mtimeNs.toString());
    assert.equal(await listed(pod.id), 'SANDBOX_NOTREADY');

    await stopRemoveAndCheck(pod.id);
    const cli = await execFileAsync(join(REPO, 'bin', 'podchart'), ['pods', '--json', '--root', paths.root]);
    const pods = JSON.parse(cli.stdout) as { id: string }[];
    assert.equal(pods.some((p) => p.id === pod.id), false, `podchart pods still lists ${pod.id}`);
  });

  test('3. an exit while the daemon runs is noticed: NOTREADY with exit code 137', TIMEOUT, async () => {
    const pod = await runPod('dies-while-up');
    process.kill(pod.pid, 'SIGKILL');
    await eventually(`pod ${pod.id} to become NOTREADY`, async () => (await listed(pod.id)) === 'SANDBOX_NOTREADY', 15_000);
    const { info } = await status(pod.id);
    assert.equal(info.actorState, 'STOPPED');
    assert.equal(info.exit?.code, 137);
    await stopRemoveAndCheck(pod.id);
  });

  /** What must exist when the daemon dies at each create fault point: proof the rollback has work to do. */
  const createPoints: { point: string; pauseless?: true; before: (id: string) => void }[] = [
    {
      point: 'sandbox.create.files',
      before: (id) => {
        assert.ok(existsSync(join(rootDirOf(paths, id), 'hostname')), 'pod files not written');
        assert.equal(isMounted(shmOf(paths, id)), false, 'shm mounted before its step');
        assert.equal(isMounted(netnsFile(id)), false, 'netns mounted before its step');
      },
    },
    {
      // The shm mount and the netns are made at once: both exist here.
      point: 'sandbox.create.netns',
      before: (id) => {
        assert.ok(isMounted(shmOf(paths, id)), 'shm not mounted');
        assert.ok(isMounted(netnsFile(id)), 'netns not mounted');
        assert.equal(runcIds(paths).includes(id), false, 'pause container created before its step');
      },
    },
    {
      point: 'sandbox.create.created',
      before: (id) => {
        assert.ok(runcIds(paths).includes(id), 'runc does not know the pause container');
        assert.ok(processesOf(id).some((p) => p.cmdline.includes('conmon')), 'no conmon for the pause container');
      },
    },
    {
      point: 'sandbox.create.started',
      before: (id) => {
        assert.ok(runcIds(paths).includes(id), 'runc does not know the pause container');
        assert.ok(processesOf(id).some((p) => p.cmdline.includes('catatonit')), 'the pause process is not running');
      },
    },
    {
      // A pod without a pause: its pinned namespaces are made beside the netns.
      point: 'sandbox.create.netns',
      pauseless: true,
      before: (id) => {
        for (const kind of ['ipc', 'uts']) assert.ok(isMounted(join(runDirOf(paths, id), 'ns', kind)), `${kind} namespace not pinned`);
        assert.ok(isMounted(netnsFile(id)), 'netns not mounted');
        assert.equal(runcIds(paths).includes(id), false, 'a runc container for a pod without a pause');
      },
    },
    {
      point: 'sandbox.create.network',
      pauseless: true,
      before: (id) => {
        for (const kind of ['ipc', 'uts']) assert.ok(isMounted(join(runDirOf(paths, id), 'ns', kind)), `${kind} namespace not pinned`);
        assert.ok(leaseOf(id), 'CNI ADD leased no IP to the pod');
        assert.equal(processesOf(id).length, 0, 'a process of a pod without a pause');
      },
    },
  ];

  for (const [i, { point, pauseless, before: check }] of createPoints.entries()) {
    test(`4.${i + 1} a pod ${pauseless ? 'without a pause ' : ''}half-created when the daemon died at ${point} is rolled back`, TIMEOUT, async () => {
      const name = `half-created-${i + 1}`;
      await crashAt(point, () => daemon.cri.call('RunPodSandbox', { config: pauseless ? podConfig(name) : pausePodConfig(name) }));
      const row = findRowByName(name);
      assert.match(row.state, /^(UNKNOWN|PENDING)/, `persisted state of the half-created pod`);
      check(row.id);

      await restart({});
      await eventually(`half-created pod ${row.id} to be rolled back`, async () => (await listed(row.id)) === null, 30_000);
      await assertGone(row.id);
      assert.equal(leaseOf(row.id), null, 'the rollback released the IP lease');
    });
  }

  test('5. a pod half-stopped when the daemon died is stopped on restart', TIMEOUT, async () => {
    const pod = await runPod('half-stopped');
    await crashAt('sandbox.stop.killed', () => daemon.cri.call('StopPodSandbox', { podSandboxId: pod.id }));
    assert.equal(findRowByName('half-stopped').state, 'STOPPING.pause');
    assert.equal(startTime(pod.pid), null, 'the pause process survived the stop');
    assert.ok(isMounted(netnsFile(pod.id)), 'netns unmounted before the fault point');

    await restart({});
    await eventually(`half-stopped pod ${pod.id} to be STOPPED`, async () => (await status(pod.id)).info.actorState === 'STOPPED', 30_000);
    const { state, info } = await status(pod.id);
    assert.equal(state, 'SANDBOX_NOTREADY');
    assert.ok(info.exit, 'no exit recorded');
    assert.equal(info.lastError, null);
    assert.equal(isMounted(netnsFile(pod.id)), false, 'netns still mounted');
    assert.equal(existsSync(netnsFile(pod.id)), true, 'netns file deleted by stop');
    assert.equal(isMounted(shmOf(paths, pod.id)), false, 'shm still mounted');
    assert.equal(runcIds(paths).includes(pod.id), false, 'pause container not deleted');

    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod.id });
    assert.equal(await listed(pod.id), null);
    await assertGone(pod.id);
  });

  for (const point of ['sandbox.remove.stopped', 'sandbox.remove.netns']) {
    test(`6. a pod half-removed when the daemon died at ${point} is removed on restart`, TIMEOUT, async () => {
      const name = `half-removed-${point.split('.').pop()}`;
      const pod = await runPod(name);
      await crashAt(point, () => daemon.cri.call('RemovePodSandbox', { podSandboxId: pod.id }));
      assert.equal(findRowByName(name).state, 'REMOVING.pod', 'persisted mid-removal: its containers done, the pod\'s own effect under way');
      assert.equal(startTime(pod.pid), null, 'the pause process survived the remove');
      assert.equal(runcIds(paths).includes(pod.id), false, 'pause container not deleted before the fault point');
      if (point === 'sandbox.remove.stopped') assert.ok(isMounted(netnsFile(pod.id)), 'netns unmounted before its step');
      // Past that step the unmounts and deletes are the janitor's: its job is on disk.
      else assert.ok(daemon.cleanupJobs().includes(pod.id), 'no cleanup job written before the fault point');
      assert.ok(existsSync(runDirOf(paths, pod.id)), 'run dir removed before its step');

      await restart({});
      await eventually(`half-removed pod ${pod.id} to be gone`, async () => (await listed(pod.id)) === null, 30_000);
      await assertGone(pod.id);
    });
  }

  test('7. a stale socket and lock file are taken over; a second daemon on the same state is refused', TIMEOUT, async () => {
    await daemon.kill9();
    assert.ok(existsSync(paths.socket), 'kill -9 should leave the socket behind');
    assert.ok(existsSync(join(paths.run, 'podchartd.lock')), 'kill -9 should leave the lock file behind');
    const refused = await new Promise<string>((resolve) => {
      const s = connect(paths.socket);
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
    });
    assert.equal(refused, 'ECONNREFUSED', 'the stale socket should refuse connections');

    await daemon.start();
    assert.equal(statSync(paths.socket).mode & 0o777, 0o660);
    // Listening at all proves the stale file was replaced: bind() fails on an existing path.
    assert.ok(await daemon.cri.call('Version', {}));
    assert.equal(daemon.pid(), daemon.child?.pid, 'the lock file does not name the running daemon');

    const second = spawn(
      PODCHARTD,
      ['--root', paths.root, '--run', paths.run, '--socket', paths.socket, '--log-level', 'debug'],
      { env: { ...process.env, PODCHART_CONFIG: join(paths.base, 'no-such-config.json') }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    second.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    second.stdout.on('data', () => undefined);
    second.once('exit', (code, signal) => (exit = { code, signal }));
    try {
      const ended = await eventually('the second podchartd to exit', () => exit, 15_000);
      assert.equal(ended.signal, null, `the second daemon was killed by ${ended.signal} instead of refusing`);
      assert.notEqual(ended.code, 0, 'a second daemon on the same state exited 0');
    } finally {
      if (exit === null) second.kill('SIGKILL');
    }
    assert.match(stderr, /already running/);

    // The refused one touched nothing of the running one.
    assert.ok(running(), 'the first daemon died');
    assert.ok(existsSync(paths.socket), 'the second daemon removed the socket');
    assert.equal(daemon.pid(), daemon.child?.pid, 'the second daemon took the lock file');
    assert.ok(await daemon.cri.call('Version', {}));
  });

  test('8. SIGTERM stops the daemon cleanly, pods keep running, and are READY again after start', TIMEOUT, async () => {
    const pod = await runPod('graceful');
    await daemon.stop();
    assert.equal(daemon.exitCode, 0);
    assert.equal(existsSync(paths.socket), false, 'graceful stop should remove the socket');
    assert.equal(readFileSync(join(paths.run, 'podchartd.lock'), 'utf8'), '', 'graceful stop should leave no pid in the lock file');
    assert.equal(spawnSync('flock', ['--nonblock', '--exclusive', join(paths.run, 'podchartd.lock'), 'true']).status, 0, 'graceful stop should release the lock');
    assert.equal(startTime(pod.pid), pod.started, 'the pause process did not survive the graceful stop');
    assert.ok(isMounted(netnsFile(pod.id)), 'netns unmounted by the graceful stop');

    await daemon.start();
    const { state, info } = await status(pod.id);
    assert.equal(state, 'SANDBOX_READY');
    assert.equal(info.actorState, 'RUNNING');
    assert.equal(info.pid, pod.pid);
    assert.equal(startTime(pod.pid), pod.started);
    await stopRemoveAndCheck(pod.id);
  });
  test('9. a row that fails its check is quarantined with its reason; restore goes on; its name is free', TIMEOUT, async () => {
    const keeper = await runPod('keeper');
    const broken = await runPod('broken');
    await daemon.stop();
    // A row of the current version whose context does not check out (pid a string).
    const db = new BetterSqlite3(join(paths.root, 'podchart.db'));
    try {
      const row = db.prepare('SELECT context FROM sandboxes WHERE id = ?').get(broken.id) as { context: string };
      const context = { ...(JSON.parse(row.context) as Record<string, unknown>), pid: String(broken.pid) };
      db.prepare('UPDATE sandboxes SET context = ? WHERE id = ?').run(JSON.stringify(context), broken.id);
    } finally {
      db.close();
    }
    await daemon.start();
    assert.equal((await status(keeper.id)).state, 'SANDBOX_READY', 'the other pod came back');
    assert.equal(await listed(broken.id), null, 'the quarantined pod is no actor');
    const quarantined = (await (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/quarantine`)).json()) as { id: string; kind: string; reason: string }[];
    const entry = quarantined.find((q) => q.id === broken.id);
    assert.equal(entry?.kind, 'sandbox');
    assert.match(entry?.reason ?? '', /pid: Expected number, received string/);
    assert.match(daemon.logs(), /a persisted sandbox row cannot be read: quarantined/);
    // Its name is free: kubelet can make the pod again. (Its pause process and netns are left to
    // the operator: forceCleanup below takes them.)
    const again = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('broken') });
    ids.add(again.podSandboxId);
    await stopRemoveAndCheck(again.podSandboxId);
    await stopRemoveAndCheck(keeper.id);
  });
});
