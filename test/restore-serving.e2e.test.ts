/**
 * The CRI socket serves while restore runs (issue 14: a serving socket within a second of a
 * restart): Version and Status answer at once, Status with RuntimeReady=false ("Restoring"), and
 * what reads pods gets UNAVAILABLE until restore is done, never a partial list.
 *
 * A restore is held open for real: a container killed between conmon's create and `runc start`
 * (the container.start.created fault point) is one restore must ask runc about, and its runtime
 * handler is a runc wrapper whose `state` waits while a hold file exists.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Daemon, eventually, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, startWithBusybox } from './busybox-daemon.js';
import type { RegistryFixture } from './registry-fixture.js';
import { CriClient } from './cri-client.js';
import { rejects } from './grpc-assert.js';

const paths = tempPaths('pc-rsv-');
const daemon = new Daemon(paths);
const HOLD = join(paths.base, 'hold-state');
const WRAPPER = join(paths.base, 'runc-hold');
const CONFIG = join(paths.base, 'config.json');
let registry: RegistryFixture;

before(async () => {
  writeFileSync(WRAPPER, `#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = state ]; then while [ -f '${HOLD}' ]; do sleep 0.05; done; fi
done
exec /usr/sbin/runc "$@"
`, { mode: 0o755 });
  registry = await startWithBusybox(daemon, { runtimeHandlers: { 'runc-hold': { path: WRAPPER } } });
});

after(async () => {
  rmSync(HOLD, { force: true });
  await daemon.dispose();
  await registry.stop();
});

test('while restore runs: Version answers, Status says Restoring, ListPodSandbox is UNAVAILABLE; then all answer', async () => {
  const sandboxConfig = podConfig('restoring');
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: sandboxConfig, runtimeHandler: 'runc-hold' });
  const { containerId } = await daemon.cri.call<{ containerId: string }>('CreateContainer', {
    podSandboxId, sandboxConfig, config: { metadata: { name: 'caught' }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '1000'] },
  });
  await daemon.stop();
  await daemon.start({ PODCHART_CONFIG: CONFIG, PODCHART_FAULT: 'container.start.created' });
  const died = daemon.waitExit();
  await daemon.cri.call('StartContainer', { containerId }).catch(() => undefined); // the daemon dies mid-start
  await died;

  writeFileSync(HOLD, '');
  const starting = daemon.start({ PODCHART_CONFIG: CONFIG });
  const probe = new CriClient(paths.socket);
  try {
    await eventually('the socket to serve while restore is held', async () => {
      try {
        return await probe.call<{ runtimeName: string }>('Version', {}, 1_000);
      } catch {
        return null;
      }
    });
    const s = await probe.call<{ status: { conditions: { type: string; status: boolean; reason: string }[] } }>('Status', {});
    const runtime = s.status.conditions.find((c) => c.type === 'RuntimeReady');
    assert.equal(runtime?.status, false);
    assert.equal(runtime?.reason, 'Restoring');
    await rejects(probe.call('ListPodSandbox', {}), grpcStatus.UNAVAILABLE, /restoring its pods and containers/);
    await rejects(probe.call('RunPodSandbox', { config: podConfig('too-early') }), grpcStatus.UNAVAILABLE, /restoring/);
    // A streamed list follows its List method: the pods' refused, the images' answered.
    await rejects(probe.stream('runtime', 'StreamPodSandboxes', {}), grpcStatus.UNAVAILABLE, /restoring its pods and containers/);
    const images = (await probe.callImage<{ images: { id: string }[] }>('ListImages', {})).images.map((i) => i.id);
    const streamed = (await probe.stream<{ images: { id: string }[] }>('image', 'StreamImages', {})).flatMap((p) => p.images.map((i) => i.id));
    assert.deepEqual(streamed, images, 'StreamImages answers during restore, as ListImages does');

    rmSync(HOLD);
    await starting;
    const pods = await probe.call<{ items: { id: string }[] }>('ListPodSandbox', {});
    assert.ok(pods.items.some((p) => p.id === podSandboxId), 'the pod is listed once restore is done');
    const ready = await probe.call<{ status: { conditions: { type: string; status: boolean }[] } }>('Status', {});
    assert.equal(ready.status.conditions.find((c) => c.type === 'RuntimeReady')?.status, true);
    await probe.call('ContainerStatus', { containerId });
  } finally {
    probe.close();
  }
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
});
