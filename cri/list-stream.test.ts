/** The streamed lists' pages: valid Stream replies, holding the List reply's items in order. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { loadCri, PROTO_PATH } from '../proto/load.js';
import { Encoded, ItemEncodings } from './list-encoding.js';
import { pagesOf, STREAMED_LISTS } from './list-stream.js';

const cri = loadCri();
const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });

test('each Stream reply holds its items in field 1 of the same type as its List reply', () => {
  for (const [stream, { service, list }] of Object.entries(STREAMED_LISTS)) {
    const listDef = cri[service][list];
    const streamDef = cri[service][stream];
    assert.ok(listDef && streamDef, `${list} and ${stream} exist`);
    assert.equal(streamDef.responseStream, true, `${stream} is a server stream`);
    const type = (name: string): protobuf.Type => root.lookupType(`runtime.v1.${name}`);
    const listItems = type(`${list}Response`).fieldsById[1];
    const streamItems = type(`${stream}Response`).fieldsById[1];
    assert.ok(listItems && streamItems);
    assert.equal(listItems.repeated && streamItems.repeated, true, `${list} and ${stream} replies repeat field 1`);
    assert.equal(listItems.type, streamItems.type, `${list} and ${stream} hold the same message type`);
    const filter = (method: string): string | undefined => type(`${method}Request`).fieldsById[1]?.type;
    assert.equal(filter(list), filter(stream), `${stream} takes ${list}'s request`);
  }
});

// Every item the same size (two-digit numbers), so that the byte bound's pages are known.
const nn = (i: number): string => String(i).padStart(2, '0');
const pod = (i: number) => ({ id: `pod-${nn(i)}`, metadata: { name: `p${nn(i)}`, uid: `u${nn(i)}`, namespace: 'default', attempt: 0 }, state: 'SANDBOX_READY', createdAt: String(10 + i), labels: { i: nn(i) }, annotations: {}, runtimeHandler: '' });

test('pages of an encoded list reply decode as the Stream reply, in order, bounded by items and bytes', () => {
  const listDef = cri.runtimeService.ListPodSandbox;
  const streamDef = cri.runtimeService.StreamPodSandboxes;
  assert.ok(listDef && streamDef);
  const encodings = new ItemEncodings<number>((i) => listDef.responseSerialize({ items: [pod(i)] }), (i) => ({ i }), () => '');
  const items = Array.from({ length: 12 }, (_, i) => i);
  const reply = encodings.reply(items);
  const streamed = STREAMED_LISTS.StreamPodSandboxes;
  assert.ok(streamed);
  const ids = (pages: Encoded[]): string[][] => pages.map((p) => (streamDef.responseDeserialize(p.bytes) as { podSandboxes: { id: string }[] }).podSandboxes.map((s) => s.id));
  assert.deepEqual(ids(pagesOf(reply, streamed, 5)), [items.slice(0, 5), items.slice(5, 10), items.slice(10)].map((g) => g.map((i) => `pod-${nn(i)}`)));
  const one = reply.parts[0]?.length ?? 0;
  const byBytes = pagesOf(reply, streamed, 100, one * 3 + 1);
  assert.deepEqual(byBytes.map((p) => p.parts.length), [3, 3, 3, 3], 'no page past the byte bound');
  assert.deepEqual(ids(pagesOf(reply, streamed, 100, 1)).map((g) => g.length), Array(12).fill(1), 'an item bigger than the bound goes alone');
  assert.deepEqual(pagesOf(encodings.reply([]), streamed), [], 'an empty list sends no page');
  const whole = (listDef.responseDeserialize(reply.bytes) as { items: unknown[] }).items;
  assert.deepEqual(pagesOf(reply, streamed).flatMap((p) => (streamDef.responseDeserialize(p.bytes) as { podSandboxes: unknown[] }).podSandboxes), whole);
});

test('a List reply made of message objects is paged the same way', () => {
  const streamDef = cri.imageService.StreamImages;
  const streamed = STREAMED_LISTS.StreamImages;
  assert.ok(streamDef && streamed);
  const images = Array.from({ length: 3 }, (_, i) => ({ id: `sha256:${i}`, repoTags: [`t:${i}`], repoDigests: [], size: String(i + 1), uid: null, username: '', spec: null, pinned: false }));
  const pages = pagesOf({ images }, streamed, 2);
  const decoded = pages.map((p) => (streamDef.responseDeserialize(p.bytes) as { images: { id: string; repoTags: string[] }[] }).images.map((img) => img.id));
  assert.deepEqual(decoded, [['sha256:0', 'sha256:1'], ['sha256:2']]);
});
