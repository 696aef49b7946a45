/**
 * ListContainerStats items encoded fast (issue 14: ≤ 1 ms server-side with 200 containers). Every
 * stats sample is new, so list-encoding.ts's cache cannot spare its encoding, and the gRPC
 * serializer's fromObject turns each of an item's ten uint64 strings into a Long: ~15-30 µs an
 * item, 5-20 ms a reply once a second under kubelet's polls.
 *
 * An item here is two parts of one ContainerStats, written one after the other, which protobuf
 * reads as one message (fields of a message may come in any number of pieces):
 * - its attributes (id, metadata, labels, annotations), encoded once per container spec (immutable,
 *   replaced rather than changed) and kept with it;
 * - its counters, encoded per sample by protobufjs's own encoder from values already in the
 *   encoder's form (uint64 as Long-like {low, high}), skipping fromObject.
 * The bytes are those the gRPC serializer writes for the same item (stats-encoding.test.ts).
 */
import protobuf from 'protobufjs';
import type { ContainerSample } from '../actors/stats-sampler.js';
import type { ContainerSpecRecord } from '../machines/container.types.js';
import { PROTO_PATH } from '../proto/load.js';
import { containerCounters } from './stats-fields.js';

interface Types {
  stats: protobuf.Type;
}

let types: Types | null = null;

/** protobufjs's reflection of api.proto, parsed at the first stats call (proto-loader keeps its own private). */
function loadTypes(): Types {
  types ??= { stats: protobuf.loadSync(PROTO_PATH).lookupType('runtime.v1.ContainerStats') };
  return types;
}

/** A uint64 as protobufjs's writer takes it without parsing: two 32-bit halves. */
interface LongBits {
  low: number;
  high: number;
  unsigned: true;
}

const MASK_32 = 0xffffffffn;
const long = (value: bigint | number): LongBits => {
  const v = BigInt(value);
  return { low: Number(v & MASK_32) | 0, high: Number((v >> 32n) & MASK_32) | 0, unsigned: true };
};

/** The container's attributes as the inner bytes of a ContainerStats, per spec. */
const attributeBytes = new WeakMap<ContainerSpecRecord, Uint8Array>();

function attributesOf(sample: ContainerSample): Uint8Array {
  const { spec } = sample.view.context;
  let bytes = attributeBytes.get(spec);
  if (!bytes) {
    bytes = loadTypes().stats.encode({ attributes: { id: sample.view.id, metadata: spec.metadata, labels: spec.labels, annotations: spec.annotations } }).finish();
    attributeBytes.set(spec, bytes);
  }
  return bytes;
}

/** The counters of one sample as the inner bytes of a ContainerStats (cri/stats-fields.ts). */
function countersOf(sample: ContainerSample): Uint8Array {
  return loadTypes().stats.encode(containerCounters(sample, long)).finish();
}

/** ListContainerStatsResponse field 1 (`stats`), length-delimited: its key byte. */
const STATS_FIELD_KEY = (1 << 3) | 2;

/** The ListContainerStatsResponse holding just this sample's item, as the gRPC serializer encodes it. */
export function encodeContainerStatsItem(sample: ContainerSample): Buffer {
  const attributes = attributesOf(sample);
  const counters = countersOf(sample);
  const header = protobuf.Writer.create().uint32(STATS_FIELD_KEY).uint32(attributes.length + counters.length).finish();
  return Buffer.concat([header, attributes, counters]);
}
