/**
 * A pod stop with three running containers, step by step in the inspector's history (issue 13,
 * "how it will be checked"): the pod's chart stops its containers first (STOPPING.containers),
 * then its pause process (STOPPING.pause), and every step carries the StopPodSandbox call as its
 * cause, the containers' steps too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';

const daemon = new Daemon(tempPaths('pc-podstop-'));
let registry: RegistryFixture;

interface Detail { kind: string; state: string; history: { event: string; from: string | null; to: string; at: number; cause: string | null }[] }
const detail = async (id: string): Promise<Detail> => (await fetch(`http://127.0.0.1:${daemon.inspectorPort}/api/actors/${id}`)).json() as Promise<Detail>;

before(async () => {
  registry = await startWithBusybox(daemon);
});
after(async () => {
  await daemon.dispose();
  await registry.stop();
});

test('StopPodSandbox of a pod with three running containers: containers first, then the pause, one cause', async () => {
  const sandboxConfig = podConfig('three');
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig });
  const containers: string[] = [];
  for (const name of ['a', 'b', 'c']) {
    const config = { metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'] };
    const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig });
    await daemon.cri.call('StartContainer', { containerId });
    containers.push(containerId);
  }
  await daemon.cri.call('StopPodSandbox', { podSandboxId }, 120_000);

  const pod = await detail(podSandboxId);
  const stop = pod.history.slice(pod.history.findIndex((h) => h.event === 'STOP'));
  assert.deepEqual(stop.map((h) => [h.from, h.to]), [['RUNNING', 'STOPPING.containers'], ['STOPPING.containers', 'STOPPING.pause'], ['STOPPING.pause', 'STOPPED']],
    `the pod's steps: ${JSON.stringify(pod.history.map((h) => `${h.event}: ${h.from} → ${h.to}`))}`);
  const cause = stop[0]?.cause ?? '';
  assert.match(cause, /^StopPodSandbox#\d+$/);
  assert.ok(stop.every((h) => h.cause === cause), 'every step of the pod carries the call');
  const pauseStarted = stop[1]?.at ?? 0;
  const stopped = stop[2]?.at ?? 0;
  for (const id of containers) {
    const c = await detail(id);
    const steps = c.history.slice(c.history.findIndex((h) => h.to === 'STOPPING'));
    assert.deepEqual(steps.map((h) => [h.from, h.to]), [['RUNNING', 'STOPPING'], ['STOPPING', 'EXITED']], `container ${id}`);
    assert.ok(steps.every((h) => h.cause === cause), `container ${id}'s steps carry the pod's call: ${JSON.stringify(steps.map((h) => h.cause))}`);
    // Every container was told to stop before the pause was, and had exited when the pod stopped.
    // (A container's EXITED row may land a moment after the pod's STOPPING.pause: the exit it
    // reports to the pod is handled before its own snapshot is recorded.)
    assert.ok((steps[0]?.at ?? Infinity) <= pauseStarted, `container ${id} was stopping before the pause stop began`);
    assert.ok((steps[1]?.at ?? Infinity) <= stopped, `container ${id} had exited when the pod stopped`);
  }
  const statuses = await Promise.all(containers.map((containerId) => daemon.cri.call<{ status: { state: string } }>('ContainerStatus', { containerId })));
  assert.deepEqual(statuses.map((s) => s.status.state), ['CONTAINER_EXITED', 'CONTAINER_EXITED', 'CONTAINER_EXITED']);
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
});
