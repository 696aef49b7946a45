/**
 * Pods without a pause process (config dropInfraContainer, CRI-O's drop_infra_ctr; issue 14): a
 * pod that shares no pid namespace gets its ipc and uts namespaces made and pinned by `unshare`,
 * with its hostname, and no conmon or runc container of its own. Its containers join the pins,
 * restore keeps it READY while the pins hold, and stop and remove undo all of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readlinkSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Daemon, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, withBusyboxDaemon } from './busybox-daemon.js';
import { isMountPoint, pidsMatching, runcContainers } from './host-state.js';

const paths = tempPaths('pc-nopause-');
const daemon = new Daemon(paths, ['--drop-infra-container']);
withBusyboxDaemon(daemon);

const nsDir = (pod: string): string => join(paths.run, 'sandboxes', pod, 'ns');

async function runPod(name: string, pid: 'CONTAINER' | 'POD'): Promise<string> {
  const config = podConfig(name, { linux: { securityContext: { namespaceOptions: { network: 'POD', pid, ipc: 'POD' } } } });
  return (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config })).podSandboxId;
}

async function startContainer(pod: string, name: string): Promise<{ id: string; pid: number }> {
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod, sandboxConfig: {},
    config: { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'] },
  });
  await daemon.cri.call('StartContainer', { containerId });
  const r = await daemon.cri.call<{ info: { info: string } }>('ContainerStatus', { containerId, verbose: true });
  return { id: containerId, pid: (JSON.parse(r.info.info) as { pid: number }).pid };
}

async function podStatus(pod: string): Promise<{ state: string; pid: number | null }> {
  const r = await daemon.cri.call<{ status: { state: string }; info: { info: string } }>('PodSandboxStatus', { podSandboxId: pod, verbose: true });
  return { state: r.status.state, pid: (JSON.parse(r.info.info) as { pid: number | null }).pid };
}

/** The namespace a pin holds, as /proc/<pid>/ns/* names it ("uts:[4026532276]"). */
const pinnedNs = (pin: string, kind: string): string => `${kind}:[${statSync(pin).ino}]`;

test('a pod that shares no pid namespace runs without a pause: its ipc and uts are pinned, named, and joined', async () => {
  const pod = await runPod('nopause', 'CONTAINER');
  const status = await podStatus(pod);
  assert.equal(status.state, 'SANDBOX_READY');
  assert.equal(status.pid, null, 'no pause process');
  assert.equal(runcContainers(paths.run).includes(pod), false, 'no runc container for the pod');
  assert.deepEqual(pidsMatching(`--cid ${pod}`), [], 'no conmon for the pod');
  for (const kind of ['ipc', 'uts']) assert.ok(isMountPoint(join(nsDir(pod), kind)), `${kind} is pinned`);

  const c = await startContainer(pod, 'app');
  for (const kind of ['ipc', 'uts']) assert.equal(readlinkSync(`/proc/${c.pid}/ns/${kind}`), pinnedNs(join(nsDir(pod), kind), kind), `the container is in the pod's ${kind} namespace`);
  assert.notEqual(readlinkSync(`/proc/${c.pid}/ns/uts`), readlinkSync('/proc/self/ns/uts'), 'not the host\'s uts namespace');
  const hostname = await daemon.cri.call<{ stdout: Buffer }>('ExecSync', { containerId: c.id, cmd: ['hostname'], timeout: 10 });
  assert.equal(Buffer.from(hostname.stdout).toString().trim(), 'nopause', 'the pod\'s hostname, set in its uts namespace');
  assert.equal(execFileSync('hostname').toString().trim() === 'nopause', false, 'the host keeps its own name');

  await daemon.cri.call('StopPodSandbox', { podSandboxId: pod });
  assert.equal((await podStatus(pod)).state, 'SANDBOX_NOTREADY');
  for (const kind of ['ipc', 'uts']) assert.equal(isMountPoint(join(nsDir(pod), kind)), false, `${kind} unpinned at stop`);
  assert.equal(isMountPoint(`/var/run/netns/podchart-${pod.slice(0, 16)}`), false, 'netns unmounted at stop');
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  await daemon.swept();
  assert.equal(existsSync(join(paths.run, 'sandboxes', pod)), false);
});

test('a pod that shares its pid namespace keeps its pause process', async () => {
  const pod = await runPod('withpause', 'POD');
  const { pid } = await podStatus(pod);
  assert.ok(typeof pid === 'number' && pid > 0, `a pause process (pid ${String(pid)})`);
  await daemon.cri.call('StopPodSandbox', { podSandboxId: pod });
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
});

test('after kill -9 a pauseless pod is READY while its pins hold, NOTREADY once one is gone', async () => {
  const kept = await runPod('kept', 'CONTAINER');
  const c = await startContainer(kept, 'app');
  const lost = await runPod('lost', 'CONTAINER');
  await daemon.kill9();
  // What a reboot does to a pod's namespaces, to one of the two pods.
  execFileSync('umount', [join(nsDir(lost), 'ipc')]);
  await daemon.start();
  assert.equal((await podStatus(kept)).state, 'SANDBOX_READY');
  const ctr = await daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId: c.id });
  assert.equal(ctr.status.state, 'CONTAINER_RUNNING');
  assert.equal((await podStatus(lost)).state, 'SANDBOX_NOTREADY');
  for (const pod of [kept, lost]) {
    await daemon.cri.call('StopPodSandbox', { podSandboxId: pod });
    await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  }
  await daemon.swept();
  for (const pod of [kept, lost]) assert.equal(existsSync(join(paths.run, 'sandboxes', pod)), false);
});
