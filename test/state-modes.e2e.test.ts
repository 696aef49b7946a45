/**
 * The modes of podchart's state (issue 11, item 4; the CVE-2021-41091 class): every directory we
 * create under rootDir and runDir is 0700 and every file of ours 0600, so no unprivileged host user
 * reaches an unpacked setuid binary or device node, the database (every container's env), a
 * bundle's config.json or conmon's control files. What the container itself must read keeps its
 * mode: image content inside a layer's fs/, the container's own `/` (its upper dir), the pod files
 * bind-mounted into it. A container running as uid 1000 still reads those and writes /dev/shm.
 *
 * Needs root, runc, conmon, catatonit, CNI plugins and overlayfs. One daemon for the whole file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Daemon, eventually, pausePodConfig, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import { mountPoints } from './host-state.js';
import type { RegistryFixture } from './registry-fixture.js';

const paths = tempPaths('pc-modes-');
const daemon = new Daemon(paths);
let registry: RegistryFixture;
let pod = '';
let container = '';
const podName = 'modes';
const volumeHost = join(paths.base, 'volume');
const missingHost = join(paths.base, 'made-by-podchart');

interface Finding {
  path: string;
  mode: number;
  kind: string;
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * Where our own modes stop: paths whose mode belongs to the image or the container, which the
 * walk neither judges nor enters. A mount point (the rootfs's merged/, a pod's shm) shows the
 * mounted file system; runc's state under its root is runc's (the root itself is ours).
 */
function notOurs(rel: string, mounted: Set<string>, abs: string): string | null {
  if (mounted.has(abs)) return 'a mount point';
  if (/^root\/images\/layers\/[^/]+\/fs(\.tmp-[^/]+)?$/.test(rel)) return 'a layer (image content)';
  if (/^root\/containers\/[^/]+\/rootfs\/upper$/.test(rel)) return "the container's / (its upper dir)";
  if (rel === 'root/pause/rootfs') return "the pause container's /";
  if (/^run\/runtime\/[^/]+\/[^/]+$/.test(rel)) return "the OCI runtime's own state";
  if (abs === paths.socket) return 'the CRI socket (0660, checked apart)';
  return null;
}

/** The pod files bind-mounted into every container: the container's user must read them. */
const BIND_MOUNTED = /^root\/sandboxes\/[^/]+\/(hostname|hosts|resolv\.conf)$/;

/** Every path under rootDir and runDir (lstat, no symlink followed) that group or others can use. */
function offenders(): { wide: Finding[]; bindMounted: Finding[] } {
  const mounted = new Set(mountPoints());
  const wide: Finding[] = [];
  const bindMounted: Finding[] = [];
  const visit = (abs: string): void => {
    const rel = relative(paths.base, abs);
    if (notOurs(rel, mounted, abs) !== null) return;
    let st;
    try {
      st = lstatSync(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone while we walked (an exec's files)
      throw err;
    }
    if (st.isSymbolicLink()) return; // a link's own mode is always 0777 and grants nothing
    const kind = st.isDirectory() ? 'dir' : st.isFIFO() ? 'fifo' : st.isSocket() ? 'socket' : 'file';
    if (BIND_MOUNTED.test(rel)) bindMounted.push({ path: rel, mode: st.mode, kind });
    else if ((st.mode & 0o077) !== 0) wide.push({ path: rel, mode: st.mode, kind });
    if (st.isDirectory()) for (const name of readdirSync(abs)) visit(join(abs, name));
  };
  visit(paths.root);
  visit(paths.run);
  return { wide, bindMounted };
}

function assertTight(when: string): void {
  const { wide, bindMounted } = offenders();
  assert.deepEqual(
    wide.map((f) => `${octal(f.mode)} ${f.kind} ${f.path}`),
    [],
    `${when}: group/other can use these paths under rootDir and runDir (want dirs 0700, files 0600)`,
  );
  assert.ok(bindMounted.length >= 3, `the pod's hostname, hosts and resolv.conf are there (${bindMounted.map((f) => f.path).join(', ')})`);
  for (const f of bindMounted) assert.equal(octal(f.mode), '0644', `${f.path} is bind-mounted into containers that run as any uid`);
  assert.equal(octal(statSync(paths.socket).mode), '0660', 'the CRI socket keeps its mode');
}

async function sh(script: string): Promise<{ out: string; code: number }> {
  const r = await daemon.cri.call<{ stdout: Buffer; stderr: Buffer; exitCode: number }>('ExecSync', { containerId: container, cmd: ['/bin/sh', '-c', script], timeout: 10 });
  return { out: r.stdout.toString().trim() + r.stderr.toString().trim(), code: r.exitCode };
}

/** What a non-root container needs from the host side: the bind-mounted files, /dev/shm, a volume under a dir runc made. */
async function assertUid1000Works(): Promise<void> {
  assert.equal((await sh('id -u')).out, '1000');
  assert.equal((await sh('cat /etc/hostname')).out, podName);
  const hosts = await sh('cat /etc/hosts');
  assert.equal(hosts.code, 0, hosts.out);
  assert.match(hosts.out, /localhost/);
  const resolv = await sh('cat /etc/resolv.conf > /dev/null && echo readable');
  assert.equal(resolv.out, 'readable');
  const shm = await sh('echo in-shm > /dev/shm/probe && cat /dev/shm/probe && rm /dev/shm/probe');
  assert.equal(shm.out, 'in-shm');
  // /vol is not in the image: runc made it for the mount, with its own umask. 0700 there would lock uid 1000 out.
  const volume = await sh('cat /vol/data/hello && ls -ld /vol');
  assert.equal(volume.code, 0, volume.out);
  assert.match(volume.out, /^from host\ndrwxr-xr-x/);
  assert.equal((await sh('ls / > /dev/null && echo listed')).out, 'listed', "the container's / is its user's to list");
}

before(async () => {
  registry = await startWithBusybox(daemon);
  mkdirSync(volumeHost, { recursive: true });
  writeFileSync(join(volumeHost, 'hello'), 'from host\n');
  chmodSync(join(volumeHost, 'hello'), 0o644);
  // A pod with a pause process (its bundle is among the files), and one without (its pins are).
  pod = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: pausePodConfig(podName, { logDirectory: join(paths.base, 'pod-logs') }) })).podSandboxId;
  await daemon.cri.call('RunPodSandbox', { config: podConfig(`${podName}-nopause`, { logDirectory: join(paths.base, 'pod-logs-nopause') }) });
  const created = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod,
    config: {
      metadata: { name: 'app', attempt: 0 },
      image: { image: BUSYBOX_IMAGE },
      command: ['/bin/sh', '-c', 'sleep 1000'],
      envs: [{ key: 'SECRET', value: Buffer.from('from-a-kubernetes-secret') }],
      logPath: 'app/0.log',
      mounts: [
        { containerPath: '/vol/data', hostPath: volumeHost, readonly: true },
        { containerPath: '/made', hostPath: missingHost, readonly: false },
      ],
      linux: { securityContext: { runAsUser: { value: '1000' } } },
    },
    sandboxConfig: {},
  });
  container = created.containerId;
  await daemon.cri.call('StartContainer', { containerId: container });
  await eventually('the container to run', async () => {
    const s = await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId: container });
    return s.status.state === 'CONTAINER_RUNNING';
  });
  // One that has exited too: conmon writes its exit files then, with the umask runc needs.
  const { containerId: done } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod,
    config: { metadata: { name: 'done', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['/bin/sh', '-c', 'exit 3'], logPath: 'done/0.log' },
    sandboxConfig: {},
  });
  await daemon.cri.call('StartContainer', { containerId: done });
  await eventually('the second container to exit', async () => {
    const s = await daemon.cri.call<{ status: { state: string; exitCode: number } }>('ContainerStatus', { containerId: done });
    return s.status.state === 'CONTAINER_EXITED' && s.status.exitCode === 3;
  });
});

after(async () => {
  await daemon.dispose();
  await registry?.stop();
});

describe('state directory and file modes', () => {
  test('a fresh tree: dirs 0700, files 0600, and a uid-1000 container still reads its pod files and writes /dev/shm', async () => {
    await assertUid1000Works();
    assertTight('after pull, RunPodSandbox, CreateContainer, StartContainer and ExecSync');
    const layers = join(paths.root, 'images', 'layers');
    const layer = readdirSync(layers).find((n) => /^[0-9a-f]{12,}$/.test(n));
    assert.ok(layer, 'the busybox layer is unpacked');
    // The image keeps its own modes: only the directories around it are ours.
    assert.equal(octal(statSync(join(layers, layer, 'fs', 'tmp')).mode), '1777', "the image's /tmp keeps its sticky 1777");
    assert.equal(octal(statSync(join(layers, layer, 'fs', 'bin', 'busybox')).mode), '0755');
    // A missing hostPath is made as Docker and kubelet make one: 0755, for a container of any uid.
    assert.equal(octal(statSync(missingHost).mode), '0755', 'a hostPath dir podchart creates is not ours to tighten');
  });

  test('a restart tightens a tree an older daemon left wide open, image content untouched', async () => {
    await daemon.stop(); // pods keep running under conmon
    const layers = join(paths.root, 'images', 'layers');
    const layer = readdirSync(layers).find((n) => /^[0-9a-f]{12,}$/.test(n)) ?? '';
    const blobs = join(paths.root, 'images', 'content', 'blobs', 'sha256');
    const blob = readdirSync(blobs)[0] ?? '';
    const ctrDir = join(paths.root, 'containers', container);
    const podRun = join(paths.run, 'sandboxes', pod);
    // What an older podchart left: 0711/0755 dirs, 0644 files.
    const widened: [string, number][] = [
      [paths.root, 0o711],
      [paths.run, 0o711],
      [join(paths.root, 'images'), 0o755],
      [layers, 0o755],
      [join(layers, layer), 0o755],
      [join(layers, layer, 'diffid'), 0o644],
      [join(paths.root, 'images', 'content'), 0o755],
      [blobs, 0o755],
      [join(blobs, blob), 0o644],
      [join(paths.root, 'podchart.db'), 0o644],
      [join(paths.root, 'sandboxes'), 0o755],
      [join(paths.root, 'sandboxes', pod), 0o755],
      [join(paths.root, 'containers'), 0o755],
      [ctrDir, 0o755],
      [join(ctrDir, 'bundle'), 0o755],
      [join(ctrDir, 'bundle', 'config.json'), 0o644],
      [join(ctrDir, 'rootfs'), 0o755],
      [join(ctrDir, 'rootfs', 'work'), 0o755],
      [join(paths.root, 'pause'), 0o755],
      [join(paths.root, 'cni'), 0o755],
      [join(paths.run, 'sandboxes'), 0o755],
      [podRun, 0o755],
      [join(podRun, 'bundle'), 0o755],
      [join(podRun, 'bundle', 'config.json'), 0o644],
      [join(podRun, 'conmon.pid'), 0o644],
      [join(paths.run, 'containers'), 0o755],
      [join(paths.run, 'containers', container), 0o755],
      [join(paths.run, 'containers', container, 'exits'), 0o755],
      [join(paths.run, 'runtime'), 0o755],
      [join(paths.run, 'runtime', 'runc'), 0o711],
    ];
    for (const cache of readdirSync(join(paths.root, 'cni'))) widened.push([join(paths.root, 'cni', cache), 0o644]);
    // A clean stop removes the WAL and -shm; a crash leaves them, with the db's mode at the time.
    for (const wal of ['podchart.db-wal', 'podchart.db-shm']) if (existsSync(join(paths.root, wal))) widened.push([join(paths.root, wal), 0o644]);
    for (const [path, mode] of widened) chmodSync(path, mode);
    const fsRoot = join(layers, layer, 'fs');
    const imageModes = new Map([fsRoot, join(fsRoot, 'tmp'), join(fsRoot, 'bin', 'busybox'), join(fsRoot, 'home', 'app')].map((p) => [p, octal(statSync(p).mode)]));
    assert.ok(offenders().wide.length >= widened.length, 'the walk sees the widened tree');

    await daemon.start({ PODCHART_CONFIG: join(paths.base, 'config.json') });
    assertTight('after a restart on a tree left wide open');
    for (const [p, mode] of imageModes) assert.equal(octal(statSync(p).mode), mode, `${relative(paths.base, p)} is image content: its mode is the image's`);
    await assertUid1000Works();
    assertTight('after ExecSync on the restarted daemon');
  });
});
