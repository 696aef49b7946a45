// Checks proto/api.proto against the reference CRI v1 descriptor
// (../shared/cri-api/runtime-v1.json, a protobufjs Root.toJSON() dump).
// Only wire-relevant facts are compared; comments and options such as
// go_package / deprecated / debug_redact are ignored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

import { loadCri, PROTO_PATH } from './load.js';
import { lookedFor, sharedFile } from '../test/stock-clients.js';

const REF_MISSING = `reference descriptor not found: looked for ${lookedFor('cri-api/runtime-v1.json')}`;

/** Walk up from this file until a directory containing package.json. */
function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

const REPO_ROOT = findRepoRoot();
const PROTO_FILE = path.join(REPO_ROOT, 'proto', 'api.proto');
const REF_FILE = sharedFile('cri-api/runtime-v1.json') ?? path.resolve(REPO_ROOT, '..', 'shared', 'cri-api', 'runtime-v1.json');

// ---------------------------------------------------------------------------
// Normalisation of a protobufjs JSON descriptor into a flat, comparable form
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

interface FieldInfo {
  id: number;
  type: string; // fully-qualified for message/enum types, scalar name otherwise
  rule: string; // '' | 'repeated' | 'optional' | 'required'
  keyType: string; // '' unless a map field
  packed: string; // '' unless an explicit packed option is present
}
interface MessageInfo {
  kind: 'message';
  fields: Map<string, FieldInfo>;
  oneofs: Map<string, string[]>; // oneof name -> sorted member names
}
interface EnumInfo {
  kind: 'enum';
  values: Map<string, number>;
}
interface MethodInfo {
  requestType: string;
  responseType: string;
  requestStream: boolean;
  responseStream: boolean;
}
interface ServiceInfo {
  kind: 'service';
  methods: Map<string, MethodInfo>;
}
type TypeInfo = MessageInfo | EnumInfo | ServiceInfo;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface RawEntry {
  kind: TypeInfo['kind'];
  scope: string; // full name of the enclosing namespace / message ('' = root)
  node: Json;
}

/** Collect every message, enum and service, keyed by fully-qualified name. */
function collect(node: Json, prefix: string, out: Map<string, RawEntry>): void {
  const nested = node['nested'];
  if (!isObj(nested)) return;
  for (const [name, child] of Object.entries(nested)) {
    if (!isObj(child)) continue;
    const full = prefix ? `${prefix}.${name}` : name;
    if (isObj(child['fields'])) out.set(full, { kind: 'message', scope: prefix, node: child });
    else if (isObj(child['values'])) out.set(full, { kind: 'enum', scope: prefix, node: child });
    else if (isObj(child['methods'])) out.set(full, { kind: 'service', scope: prefix, node: child });
    collect(child, full, out);
  }
}

/** Resolve a type reference the way protoc does: innermost scope outwards. */
function resolveType(ref: string, scope: string, known: Map<string, RawEntry>): string {
  if (ref.startsWith('.')) return ref.slice(1);
  let s = scope;
  for (;;) {
    const candidate = s ? `${s}.${ref}` : ref;
    if (known.has(candidate)) return candidate;
    if (!s) break;
    const dot = s.lastIndexOf('.');
    s = dot < 0 ? '' : s.slice(0, dot);
  }
  return ref; // scalar (or unresolvable, which will then show up as a diff)
}

function normalise(root: Json): Map<string, TypeInfo> {
  const raw = new Map<string, RawEntry>();
  collect(root, '', raw);
  const out = new Map<string, TypeInfo>();
  for (const [full, { kind, node }] of raw) {
    if (kind === 'message') {
      const fields = new Map<string, FieldInfo>();
      for (const [fname, f] of Object.entries(node['fields'] as Json)) {
        if (!isObj(f)) continue;
        const opts = isObj(f['options']) ? f['options'] : {};
        fields.set(fname, {
          id: Number(f['id']),
          // types inside a message resolve starting from the message itself
          type: resolveType(String(f['type']), full, raw),
          rule: typeof f['rule'] === 'string' ? f['rule'] : '',
          keyType: typeof f['keyType'] === 'string' ? f['keyType'] : '',
          packed: 'packed' in opts ? String(opts['packed']) : '',
        });
      }
      const oneofs = new Map<string, string[]>();
      if (isObj(node['oneofs'])) {
        for (const [oname, o] of Object.entries(node['oneofs'])) {
          const members = isObj(o) && Array.isArray(o['oneof']) ? (o['oneof'] as unknown[]).map(String) : [];
          oneofs.set(oname, [...members].sort());
        }
      }
      out.set(full, { kind, fields, oneofs });
    } else if (kind === 'enum') {
      const values = new Map<string, number>();
      for (const [vname, v] of Object.entries(node['values'] as Json)) values.set(vname, Number(v));
      out.set(full, { kind, values });
    } else {
      const methods = new Map<string, MethodInfo>();
      for (const [mname, m] of Object.entries(node['methods'] as Json)) {
        if (!isObj(m)) continue;
        const scope = raw.get(full)?.scope ?? '';
        methods.set(mname, {
          requestType: resolveType(String(m['requestType']), scope, raw),
          responseType: resolveType(String(m['responseType']), scope, raw),
          requestStream: m['requestStream'] === true,
          responseStream: m['responseStream'] === true,
        });
      }
      out.set(full, { kind: 'service', methods });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------

const sortedUnion = <T>(a: Iterable<T>, b: Iterable<T>): T[] => [...new Set([...a, ...b])].sort();

/** Every wire-relevant difference between reference (ref) and ours (got). */
function diffDescriptors(ref: Map<string, TypeInfo>, got: Map<string, TypeInfo>): string[] {
  const diffs: string[] = [];
  for (const name of sortedUnion(ref.keys(), got.keys())) {
    const r = ref.get(name);
    const g = got.get(name);
    if (!g) {
      diffs.push(`missing ${r!.kind} ${name}`);
      continue;
    }
    if (!r) {
      diffs.push(`extra ${g.kind} ${name} (not in reference)`);
      continue;
    }
    if (r.kind !== g.kind) {
      diffs.push(`${name}: is a ${g.kind}, reference has a ${r.kind}`);
      continue;
    }
    if (r.kind === 'message' && g.kind === 'message') {
      for (const f of sortedUnion(r.fields.keys(), g.fields.keys())) {
        const rf = r.fields.get(f);
        const gf = g.fields.get(f);
        if (!gf) {
          diffs.push(`${name}.${f}: missing field (reference: ${JSON.stringify(rf)})`);
          continue;
        }
        if (!rf) {
          diffs.push(`${name}.${f}: extra field (ours: ${JSON.stringify(gf)})`);
          continue;
        }
        for (const k of ['id', 'type', 'rule', 'keyType', 'packed'] as const) {
          if (rf[k] !== gf[k]) {
            diffs.push(`${name}.${f}: ${k} is ${JSON.stringify(gf[k])}, reference ${JSON.stringify(rf[k])}`);
          }
        }
      }
      for (const o of sortedUnion(r.oneofs.keys(), g.oneofs.keys())) {
        const ro = r.oneofs.get(o);
        const go = g.oneofs.get(o);
        if (!go) diffs.push(`${name}: missing oneof ${o} [${ro!.join(', ')}]`);
        else if (!ro) diffs.push(`${name}: extra oneof ${o} [${go.join(', ')}]`);
        else if (ro.join(',') !== go.join(',')) {
          diffs.push(`${name}: oneof ${o} members [${go.join(', ')}], reference [${ro.join(', ')}]`);
        }
      }
    } else if (r.kind === 'enum' && g.kind === 'enum') {
      for (const v of sortedUnion(r.values.keys(), g.values.keys())) {
        const rv = r.values.get(v);
        const gv = g.values.get(v);
        if (gv === undefined) diffs.push(`${name}.${v}: missing enum value (reference = ${rv})`);
        else if (rv === undefined) diffs.push(`${name}.${v}: extra enum value (= ${gv})`);
        else if (rv !== gv) diffs.push(`${name}.${v}: enum value is ${gv}, reference ${rv}`);
      }
    } else if (r.kind === 'service' && g.kind === 'service') {
      for (const m of sortedUnion(r.methods.keys(), g.methods.keys())) {
        const rm = r.methods.get(m);
        const gm = g.methods.get(m);
        if (!gm) {
          diffs.push(`${name}.${m}: missing rpc (reference: ${JSON.stringify(rm)})`);
          continue;
        }
        if (!rm) {
          diffs.push(`${name}.${m}: extra rpc (ours: ${JSON.stringify(gm)})`);
          continue;
        }
        for (const k of ['requestType', 'responseType', 'requestStream', 'responseStream'] as const) {
          if (rm[k] !== gm[k]) {
            diffs.push(`${name}.${m}: ${k} is ${JSON.stringify(gm[k])}, reference ${JSON.stringify(rm[k])}`);
          }
        }
      }
    }
  }
  return diffs;
}

function readReference(): Json | undefined {
  if (!existsSync(REF_FILE)) return undefined;
  const parsed: unknown = JSON.parse(readFileSync(REF_FILE, 'utf8'));
  assert.ok(isObj(parsed), `${REF_FILE}: not a JSON object`);
  return parsed;
}

function parseOurs(): Json {
  const root = new protobuf.Root().loadSync(PROTO_FILE, { keepCase: true });
  root.resolveAll(); // fails loudly on unresolvable type references
  return JSON.parse(JSON.stringify(root.toJSON())) as Json;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

test('proto/api.proto is wire-identical to the reference CRI v1 descriptor', (t) => {
  const refJson = readReference();
  if (!refJson) {
    t.skip(REF_MISSING);
    return;
  }
  const ref = normalise(refJson);
  const got = normalise(parseOurs());

  // Sanity: the reference must actually describe CRI v1.
  assert.ok(ref.has('runtime.v1.RuntimeService'), 'reference lacks runtime.v1.RuntimeService');
  assert.ok(ref.has('runtime.v1.ImageService'), 'reference lacks runtime.v1.ImageService');

  // Every wire-level difference at once (missing/extra types included).
  const diffs = diffDescriptors(ref, got);
  assert.equal(
    diffs.length,
    0,
    `${diffs.length} wire difference(s) between ${path.relative(REPO_ROOT, PROTO_FILE)} and ${REF_FILE}:\n  - ` +
      diffs.join('\n  - '),
  );

  // Same set of type names (messages, enums, services, nested ones included).
  const missing = [...ref.keys()].filter((n) => !got.has(n)).sort();
  const extra = [...got.keys()].filter((n) => !ref.has(n)).sort();
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'type names differ');
});

test('loadCri() exposes RuntimeService and ImageService matching the reference', (t) => {
  assert.equal(PROTO_PATH, PROTO_FILE, 'PROTO_PATH should point at <repo>/proto/api.proto');

  const cri = loadCri();
  assert.equal(loadCri(), cri, 'loadCri() result should be cached');
  assert.equal(typeof cri.RuntimeServiceClient, 'function');
  assert.equal(typeof cri.ImageServiceClient, 'function');
  assert.equal(cri.RuntimeServiceClient.service, cri.runtimeService);
  assert.equal(cri.ImageServiceClient.service, cri.imageService);
  assert.ok(Object.keys(cri.runtimeService).length > 0, 'RuntimeService has no methods');
  assert.ok(Object.keys(cri.imageService).length > 0, 'ImageService has no methods');

  const refJson = readReference();
  if (!refJson) {
    t.skip(REF_MISSING);
    return;
  }
  const ref = normalise(refJson);
  const cases: Array<[string, Record<string, grpc.MethodDefinition<unknown, unknown>>]> = [
    ['RuntimeService', cri.runtimeService],
    ['ImageService', cri.imageService],
  ];
  for (const [svc, def] of cases) {
    const refSvc = ref.get(`runtime.v1.${svc}`);
    assert.ok(refSvc && refSvc.kind === 'service', `reference lacks service runtime.v1.${svc}`);
    const refNames = [...refSvc.methods.keys()].sort();
    assert.equal(Object.keys(def).length, refSvc.methods.size, `${svc}: method count`);
    assert.deepEqual(Object.keys(def).sort(), refNames, `${svc}: method names`);
    for (const [m, info] of refSvc.methods) {
      const md = def[m];
      assert.ok(md, `${svc}.${m} missing from loaded definition`);
      assert.equal(md.path, `/runtime.v1.${svc}/${m}`, `${svc}.${m}: path`);
      assert.equal(md.requestStream, info.requestStream, `${svc}.${m}: requestStream`);
      assert.equal(md.responseStream, info.responseStream, `${svc}.${m}: responseStream`);
    }
  }
});
