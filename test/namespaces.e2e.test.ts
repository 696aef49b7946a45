/**
 * Namespaces of dead processes (issue 12, item 6): a container joins its pod's namespaces by pins
 * (bind mounts made while the pause process was known to be the pod's), never by a /proc/<pid>
 * path a reused pid would redirect; a TARGET pid namespace is a running container of the same pod.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { rejects } from './grpc-assert.js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, withBusyboxDaemon } from './busybox-daemon.js';
import { isMountPoint, processAlive } from './host-state.js';

const paths = tempPaths('pc-ns-');
const daemon = new Daemon(paths);
withBusyboxDaemon(daemon);

const nsDir = (pod: string): string => join(paths.run, 'sandboxes', pod, 'ns');

async function runPod(name: string): Promise<string> {
  return (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig(name, { linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'POD', ipc: 'POD' } } } }) })).podSandboxId;
}

async function create(pod: string, name: string, namespaceOptions?: Record<string, unknown>): Promise<string> {
  const linux = namespaceOptions ? { securityContext: { namespaceOptions } } : {};
  return (await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId: pod, sandboxConfig: {},
    config: { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'], linux },
  })).containerId;
}

async function verbose(id: string): Promise<{ pid: number; runtimeSpec: { linux: { namespaces: { type: string; path?: string }[] } } }> {
  const r = await daemon.cri.call<{ info: { info: string } }>('ContainerStatus', { containerId: id, verbose: true });
  return JSON.parse(r.info.info) as never;
}

const nsOf = (pid: number, kind: string): string => readlinkSync(`/proc/${pid}/ns/${kind}`);

test('a pod\'s ipc, uts and pid namespaces are pinned while it runs, and joined by their pins', async () => {
  const pod = await runPod('pinned');
  for (const kind of ['ipc', 'uts', 'pid']) assert.ok(isMountPoint(join(nsDir(pod), kind)), `${kind} is pinned`);
  const id = await create(pod, 'joined');
  const { runtimeSpec } = await verbose(id);
  const joined = runtimeSpec.linux.namespaces.filter((n) => n.path);
  assert.deepEqual(joined.map((n) => n.path).sort(), [join(nsDir(pod), 'ipc'), join(nsDir(pod), 'pid'), join(nsDir(pod), 'uts'), `/var/run/netns/podchart-${pod.slice(0, 16)}`].sort());
  await daemon.cri.call('StartContainer', { containerId: id });
  const { pid } = await verbose(id);
  const pause = (JSON.parse((await daemon.cri.call<{ info: { info: string } }>('PodSandboxStatus', { podSandboxId: pod, verbose: true })).info.info) as { pid: number }).pid;
  for (const kind of ['ipc', 'uts', 'pid', 'net']) assert.equal(nsOf(pid, kind), nsOf(pause, kind), `the container is in the pod's ${kind} namespace`);

  await daemon.cri.call('StopPodSandbox', { podSandboxId: pod });
  for (const kind of ['ipc', 'uts', 'pid']) assert.equal(isMountPoint(join(nsDir(pod), kind)), false, `${kind} unpinned at stop`);
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  await daemon.swept();
  assert.equal(existsSync(nsDir(pod)), false);
});

test('TARGET: a running container of the same pod, its namespace pinned; anything else is refused', async () => {
  const pod = await runPod('target');
  const other = await runPod('target-other');
  const target = await create(pod, 'app');
  await daemon.cri.call('StartContainer', { containerId: target });
  const { pid: targetPid } = await verbose(target);

  const debug = await create(pod, 'debug', { network: 'POD', pid: 'TARGET', ipc: 'POD', targetId: target });
  const pinned = join(paths.run, 'containers', debug, 'ns', 'pid');
  assert.ok(isMountPoint(pinned), 'the target\'s pid namespace is pinned for the debug container');
  assert.deepEqual((await verbose(debug)).runtimeSpec.linux.namespaces.find((n) => n.type === 'pid'), { type: 'pid', path: pinned });
  await daemon.cri.call('StartContainer', { containerId: debug });
  assert.equal(nsOf((await verbose(debug)).pid, 'pid'), nsOf(targetPid, 'pid'), 'the debug container shares the target\'s pid namespace');

  const elsewhere = await create(other, 'app2');
  await daemon.cri.call('StartContainer', { containerId: elsewhere });
  await rejects(create(pod, 'debug-x', { network: 'POD', pid: 'TARGET', ipc: 'POD', targetId: elsewhere }), grpcStatus.INVALID_ARGUMENT, /belongs to another pod sandbox .* must be in the same pod/);
  await rejects(create(pod, 'debug-y', { network: 'POD', pid: 'TARGET', ipc: 'POD', targetId: 'f'.repeat(64) }), grpcStatus.NOT_FOUND, /target_id: container .* not found/);
  const idle = await create(pod, 'idle');
  await rejects(create(pod, 'debug-z', { network: 'POD', pid: 'TARGET', ipc: 'POD', targetId: idle }), grpcStatus.FAILED_PRECONDITION, /is CREATED, not running: it has no pid namespace to share/);

  // A debug container created while its target ran, started after the target has exited: refused,
  // and never joined to whatever process took the target's pid.
  const late = await create(pod, 'late', { network: 'POD', pid: 'TARGET', ipc: 'POD', targetId: target });
  await daemon.cri.call('StopContainer', { containerId: target, timeout: 0 });
  await eventually('the target to be gone', () => !processAlive(targetPid));
  await rejects(daemon.cri.call('StartContainer', { containerId: late }), grpcStatus.FAILED_PRECONDITION, /the container whose pid namespace it shares .* is no longer running/);

  await daemon.cri.call('RemoveContainer', { containerId: late });
  await daemon.swept(); // unpinned and deleted by the janitor, after the reply
  assert.equal(existsSync(join(paths.run, 'containers', late)), false, 'its pin and state dir are gone with it');
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: pod });
  await daemon.swept();
  assert.equal(isMountPoint(pinned), false, 'removing the pod unpinned the debug container\'s target namespace');
  await daemon.cri.call('RemovePodSandbox', { podSandboxId: other });
});
