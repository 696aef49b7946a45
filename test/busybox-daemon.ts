/**
 * The start most container tests share: a loopback registry holding the busybox test image as
 * docker.io/library/busybox:1.36 (through a mirror in the daemon's config), the daemon started with
 * that config, and the image pulled.
 */
import { after, before } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from './daemon.js';
import { busyboxLayer, buildImage, pushImage } from './image-builder.js';
import { startRegistry, type RegistryFixture } from './registry-fixture.js';

export const BUSYBOX_IMAGE = 'busybox:1.36';

/** Starts the registry and `daemon`, pulls BUSYBOX_IMAGE; the caller stops the registry. */
export async function startWithBusybox(daemon: Daemon, extraConfig: Record<string, unknown> = {}): Promise<RegistryFixture> {
  const registry = await startRegistry();
  const image = await buildImage({ layers: [{ compression: 'gzip', entries: busyboxLayer() }], config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] }, format: 'docker' });
  await pushImage(registry, 'library/busybox', '1.36', image);
  const configPath = join(daemon.paths.base, 'config.json');
  writeFileSync(configPath, JSON.stringify({ registries: { hosts: { 'docker.io': { mirrors: [registry.url] } } }, ...extraConfig }));
  await daemon.start({ PODCHART_CONFIG: configPath });
  await daemon.cri.callImage('PullImage', { image: { image: BUSYBOX_IMAGE } }, 120_000);
  return registry;
}

/** A test file's daemon with busybox: started before its tests (startWithBusybox), disposed after, with its registry. */
export function withBusyboxDaemon(daemon: Daemon): void {
  let registry: RegistryFixture | undefined;
  before(async () => {
    registry = await startWithBusybox(daemon);
  });
  after(async () => {
    await daemon.dispose();
    await registry?.stop();
  });
}
