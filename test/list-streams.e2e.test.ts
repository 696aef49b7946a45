/**
 * The streaming List RPCs (KEP-5825) on a real daemon: each sends what its List method answers,
 * for the same filters, over a server stream that ends (pages are unit-tested in
 * cri/list-stream.test.ts: a node here holds far fewer than a page's 5000 items).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, podConfig, tempPaths } from './daemon.js';
import { BUSYBOX_IMAGE, withBusyboxDaemon } from './busybox-daemon.js';

const daemon = new Daemon(tempPaths('pc-ls-'));
withBusyboxDaemon(daemon);

type Reply = Record<string, unknown>;
interface Named { id: string }
interface Stats { attributes: { id: string } }

async function streamed<T>(service: 'runtime' | 'image', method: string, field: string, request: object): Promise<T[]> {
  const pages = await daemon.cri.stream<Reply>(service, method, request);
  return pages.flatMap((page) => (page[field] as T[] | undefined) ?? []);
}

/** The List reply's items and the Stream's, for one request, as ids in order. */
async function both<T>(list: string, stream: string, listField: string, streamField: string, request: object, idOf: (item: T) => string): Promise<[string[], string[]]> {
  const service = list === 'ListImages' ? 'image' : 'runtime';
  const call = service === 'image' ? daemon.cri.callImage<Reply>(list, request) : daemon.cri.call<Reply>(list, request);
  const listed = ((await call)[listField] as T[]).map(idOf);
  const sent = (await streamed<T>(service, stream, streamField, request)).map(idOf);
  return [listed, sent];
}

describe('streamed lists answer as their List methods do', () => {
  let web = '';
  let batch = '';
  let running = '';
  let created = '';

  test('pods and containers to list', async () => {
    web = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('lsweb', { labels: { app: 'web' } }) })).podSandboxId;
    batch = (await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('lsbatch', { labels: { app: 'batch' } }) })).podSandboxId;
    const container = (name: string, labels: Record<string, string>) => ({ metadata: { name, attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['sleep', '3600'], labels });
    running = (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: web, config: container('srv', { tier: 'front' }), sandboxConfig: {} })).containerId;
    await daemon.cri.call('StartContainer', { containerId: running });
    created = (await daemon.cri.call<{ containerId: string }>('CreateContainer', { podSandboxId: batch, config: container('job', { tier: 'back' }), sandboxConfig: {} })).containerId;
    await daemon.cri.call('StopPodSandbox', { podSandboxId: batch });
  });

  test('StreamPodSandboxes: all, by id prefix, by state, by label', async () => {
    const filters = [null, { id: web.slice(0, 12) }, { state: { state: 'SANDBOX_NOTREADY' } }, { labelSelector: { app: 'web' } }, { labelSelector: { app: 'none' } }];
    for (const filter of filters) {
      const [listed, sent] = await both<Named>('ListPodSandbox', 'StreamPodSandboxes', 'items', 'podSandboxes', { filter }, (p) => p.id);
      assert.deepEqual(sent, listed, `filter ${JSON.stringify(filter)}`);
    }
    const [all] = await both<Named>('ListPodSandbox', 'StreamPodSandboxes', 'items', 'podSandboxes', {}, (p) => p.id);
    assert.deepEqual([...all].sort(), [web, batch].sort());
    const [ready] = await both<Named>('ListPodSandbox', 'StreamPodSandboxes', 'items', 'podSandboxes', { filter: { state: { state: 'SANDBOX_READY' } } }, (p) => p.id);
    assert.deepEqual(ready, [web], 'a filter that keeps some and drops others');
  });

  test('StreamContainers: all, by pod, by state, by label; the items whole', async () => {
    const filters = [null, { podSandboxId: batch.slice(0, 10) }, { state: { state: 'CONTAINER_RUNNING' } }, { labelSelector: { tier: 'back' } }, { id: running }];
    for (const filter of filters) {
      const [listed, sent] = await both<Named>('ListContainers', 'StreamContainers', 'containers', 'containers', { filter }, (c) => c.id);
      assert.deepEqual(sent, listed, `filter ${JSON.stringify(filter)}`);
    }
    const [byPod] = await both<Named>('ListContainers', 'StreamContainers', 'containers', 'containers', { filter: { podSandboxId: batch } }, (c) => c.id);
    assert.deepEqual(byPod, [created]);
    const listed = (await daemon.cri.call<{ containers: unknown[] }>('ListContainers', {})).containers;
    assert.deepEqual(await streamed('runtime', 'StreamContainers', 'containers', {}), listed, 'every field, not just the ids');
  });

  test('StreamContainerStats and StreamPodSandboxStats: the same entries', async () => {
    for (const filter of [null, { podSandboxId: web }, { labelSelector: { tier: 'front' } }]) {
      const [listed, sent] = await both<Stats>('ListContainerStats', 'StreamContainerStats', 'stats', 'containerStats', { filter }, (s) => s.attributes.id);
      assert.deepEqual(sent, listed, `filter ${JSON.stringify(filter)}`);
    }
    for (const filter of [null, { id: batch.slice(0, 8) }]) {
      const [listed, sent] = await both<Stats>('ListPodSandboxStats', 'StreamPodSandboxStats', 'stats', 'podSandboxStats', { filter }, (s) => s.attributes.id);
      assert.deepEqual(sent, listed, `filter ${JSON.stringify(filter)}`);
      assert.ok(sent.length > 0);
    }
  });

  test('StreamImages: all, and one image by name', async () => {
    for (const filter of [null, { image: { image: BUSYBOX_IMAGE } }, { image: { image: 'absent:1' } }]) {
      const [listed, sent] = await both<Named>('ListImages', 'StreamImages', 'images', 'images', { filter }, (i) => i.id);
      assert.deepEqual(sent, listed, `filter ${JSON.stringify(filter)}`);
    }
    assert.equal((await streamed('image', 'StreamImages', 'images', {})).length, 1);
  });

  test('an empty result ends the stream with no message', async () => {
    assert.deepEqual(await daemon.cri.stream('runtime', 'StreamPodSandboxes', { filter: { id: 'f'.repeat(64) } }), []);
  });

  test('cleanup', async () => {
    for (const id of [web, batch]) {
      await daemon.cri.call('StopPodSandbox', { podSandboxId: id });
      await daemon.cri.call('RemovePodSandbox', { podSandboxId: id });
    }
    assert.deepEqual(await daemon.cri.stream('runtime', 'StreamContainers', {}), []);
  });
});
