/**
 * The streaming List RPCs (KEP-5825, "CRI list streaming", kubelet's CRIListStreaming gate):
 * StreamPodSandboxes, StreamContainers, StreamContainerStats, StreamPodSandboxStats, StreamImages
 * and StreamPodSandboxMetrics. Each takes its List method's request (the same `filter`, field 1)
 * and sends the same items as that List method, in pages, then ends the stream; a node whose list
 * outgrows one message (16 MiB for kubelet, 4 MiB for a default gRPC client) is listed whole.
 *
 * A page is built from the list reply's items as one-item encodings: each List and Stream reply
 * holds its items in repeated field 1 of the same message type (checked in list-stream.test.ts),
 * and protobuf concatenates repeated fields, so a page is the concatenation of its items' one-item
 * list replies, and it is a valid Stream reply as it is.
 */
import { loadCri } from '../proto/load.js';
import { Encoded } from './list-encoding.js';

/** At most this many items a page: containerd's batch (`defaultStreamBatchSize`). */
export const PAGE_ITEMS = 5000;
/** And at most this many bytes, unless one item alone is bigger: what any gRPC client takes by default. */
export const PAGE_BYTES = 4 * 1024 * 1024;

export interface StreamedList {
  service: 'runtimeService' | 'imageService';
  /** The List method whose handler, filters and items the stream shares. */
  list: string;
  /** The List reply's repeated field (as its handler returns it, camelCase). */
  field: string;
}

export const STREAMED_LISTS: Readonly<Record<string, StreamedList>> = {
  StreamPodSandboxes: { service: 'runtimeService', list: 'ListPodSandbox', field: 'items' },
  StreamContainers: { service: 'runtimeService', list: 'ListContainers', field: 'containers' },
  StreamContainerStats: { service: 'runtimeService', list: 'ListContainerStats', field: 'stats' },
  StreamPodSandboxStats: { service: 'runtimeService', list: 'ListPodSandboxStats', field: 'stats' },
  StreamPodSandboxMetrics: { service: 'runtimeService', list: 'ListPodSandboxMetrics', field: 'podMetrics' },
  StreamImages: { service: 'imageService', list: 'ListImages', field: 'images' },
};

/** Each item of a List reply as its one-item reply, encoded with the List method's serializer. */
function itemEncodings(reply: unknown, streamed: StreamedList): readonly Buffer[] {
  if (reply instanceof Encoded) return reply.parts;
  const def = loadCri()[streamed.service][streamed.list];
  if (!def) throw new Error(`${streamed.service} has no method ${streamed.list}`);
  const items = (reply as Record<string, unknown[] | undefined>)[streamed.field] ?? [];
  return items.map((item) => def.responseSerialize({ [streamed.field]: [item] }));
}

/** The List reply cut into the Stream's replies: none for an empty list. */
export function pagesOf(reply: unknown, streamed: StreamedList, maxItems = PAGE_ITEMS, maxBytes = PAGE_BYTES): Encoded[] {
  const pages: Encoded[] = [];
  let page: Buffer[] = [];
  let bytes = 0;
  const close = (): void => {
    if (page.length > 0) pages.push(new Encoded(Buffer.concat(page), page));
    page = [];
    bytes = 0;
  };
  for (const item of itemEncodings(reply, streamed)) {
    if (page.length >= maxItems || (page.length > 0 && bytes + item.length > maxBytes)) close();
    page.push(item);
    bytes += item.length;
  }
  close();
  return pages;
}
