import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SNAPSHOT_VERSION, parseRow, statePaths, type RowInput } from './rows.js';
import { SNAPSHOT_VERSION as FROM_STORE, type ActorKind } from './store.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { containerContext, mutate, sandboxContext } from './rows.arbitraries.js';

/**
 * tsc copies no .json into dist/, so the fixtures are read from the source tree: beside this
 * file when it runs from source, ../../storage/fixtures from dist/storage/, or under the
 * directory holding package.json (as proto/load.ts finds api.proto).
 */
function fixturesDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'fixtures'), join(here, '..', '..', 'storage', 'fixtures')];
  for (let dir = here; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) candidates.push(join(dir, 'storage', 'fixtures'));
  }
  const found = candidates.find((d) => existsSync(join(d, 'sandbox.v1.json')));
  if (!found) throw new Error(`storage fixtures not found; looked in ${candidates.join(', ')}`);
  return found;
}

interface Fixture extends Omit<RowInput, 'context'> {
  kind: ActorKind;
  /** The context as an object, for reading; the row holds JSON.stringify of it, as Store writes it. */
  context: Record<string, unknown>;
}

const FIXTURES = fixturesDir();
const fixture = (name: string): Fixture => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as Fixture;
const row = (f: Fixture): RowInput => ({ state: f.state, version: f.version, context: JSON.stringify(f.context) });
const SANDBOX_STATES = [...statePaths(sandboxMachine)];
const CONTAINER_STATES = [...statePaths(containerMachine)];

test('SNAPSHOT_VERSION is 4, and store.ts re-exports the same', () => {
  assert.equal(SNAPSHOT_VERSION, 4);
  assert.equal(FROM_STORE, SNAPSHOT_VERSION);
});

test('a v1 sandbox row is upgraded: containerPhases filled, the rest unchanged', () => {
  const f = fixture('sandbox.v1.json');
  assert.equal(f.version, 1);
  assert.ok(!('containerPhases' in f.context), 'the fixture is as old code wrote it');
  const parsed = parseRow('sandbox', row(f));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.fromVersion, 1);
  assert.equal(parsed.state, 'RUNNING');
  assert.deepEqual(parsed.context, { ...f.context, containerPhases: {}, resources: null, resourcesRequested: null });
});

test('a v1 sandbox from before CNI also gets network: null', () => {
  const context = fixture('sandbox.v1.json').context;
  delete context.network;
  const parsed = parseRow('sandbox', { state: 'STOPPED', version: 1, context: JSON.stringify(context) });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.context.network, null);
});

test('a v1 container row is upgraded: podReady false, the rest unchanged', () => {
  const f = fixture('container.v1.json');
  assert.ok(!('podReady' in f.context));
  const parsed = parseRow('container', row(f));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.deepEqual(parsed.context, { ...f.context, podReady: false });
});

test('a v2 row\'s lastError, its message alone, gets the code INTERNAL', () => {
  const f = fixture('sandbox.v2.json');
  assert.equal(typeof f.context.lastError, 'string', 'the fixture is as version 2 wrote it');
  const parsed = parseRow('sandbox', row(f));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.fromVersion, 2);
  assert.deepEqual(parsed.context.lastError, { code: 13, message: f.context.lastError });
  const c = parseRow('container', row(fixture('container.v2.json')));
  assert.ok(c.ok, c.ok ? '' : c.reason);
  assert.equal(c.context.lastError, null, 'no error stays no error');
});

test('a v3 sandbox row gets resources: null; a v3 container row is as it was', () => {
  const f = fixture('sandbox.v3.json');
  assert.ok(!('resources' in f.context), 'the fixture is as version 3 wrote it');
  const parsed = parseRow('sandbox', row(f));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  assert.equal(parsed.fromVersion, 3);
  assert.deepEqual(parsed.context, { ...f.context, resources: null, resourcesRequested: null });
  const c = fixture('container.v3.json');
  const container = parseRow('container', row(c));
  assert.ok(container.ok, container.ok ? '' : container.reason);
  assert.deepEqual(container.context, c.context);
});

test('v4 rows parse as they are', () => {
  for (const name of ['sandbox.v4.json', 'container.v4.json']) {
    const f = fixture(name);
    assert.equal(f.version, SNAPSHOT_VERSION);
    const parsed = parseRow(f.kind, row(f));
    assert.ok(parsed.ok, parsed.ok ? '' : `${name}: ${parsed.reason}`);
    assert.deepEqual(parsed.context, f.context, name);
    assert.equal(parsed.state, f.state);
  }
});

test('a version newer than this code is refused, and says so', () => {
  const parsed = parseRow('sandbox', { ...row(fixture('sandbox.v4.json')), version: SNAPSHOT_VERSION + 1 });
  assert.equal(parsed.ok, false);
  assert.match(parsed.ok ? '' : parsed.reason, /snapshot version 5, newer than this podchart knows \(4\)/);
});

test('a version that is no version is refused', () => {
  for (const version of [0, -1, 1.5, Number.NaN, '2' as unknown as number]) {
    const parsed = parseRow('container', { ...row(fixture('container.v2.json')), version });
    assert.equal(parsed.ok, false, String(version));
  }
});

test('corrupt JSON is refused, and the reason quotes none of it', () => {
  const text = row(fixture('container.v2.json')).context;
  for (const context of [text.slice(0, text.indexOf('hunter2') + 4), 'hunter2', '', '{"a":1}}']) {
    const parsed = parseRow('container', { state: 'RUNNING', version: 2, context });
    assert.equal(parsed.ok, false);
    assert.match(parsed.ok ? '' : parsed.reason, /context is not JSON/);
    assert.doesNotMatch(parsed.ok ? '' : parsed.reason, /hunt/);
  }
});

test('a state the chart does not have is refused; each one it has is taken', () => {
  const f = fixture('sandbox.v2.json');
  for (const state of ['BOGUS', 'RUNNING.nope', 'running', '', 'STOPPING.', 'CREATED']) {
    const parsed = parseRow('sandbox', { ...row(f), state });
    assert.equal(parsed.ok, false, state);
    assert.match(parsed.ok ? '' : parsed.reason, /which the sandbox chart does not have/);
  }
  // Read from the chart, not listed here: the paths the brief names, and the top-level ones old rows used.
  for (const state of ['RUNNING', 'STOPPING', 'STOPPING.pause', 'STOPPING.containers', 'REMOVING.pod', 'PENDING.creating']) {
    assert.ok(SANDBOX_STATES.includes(state), state);
    assert.ok(parseRow('sandbox', { ...row(f), state }).ok, state);
  }
  assert.ok(CONTAINER_STATES.includes('REMOVE_FAILED'));
  assert.equal(parseRow('container', { ...row(fixture('container.v2.json')), state: 'STOPPING.pause' }).ok, false);
});

test('an unknown key, a wrong type, a missing field: each refused, naming where', () => {
  const f = fixture('container.v2.json');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...f.context, surplus: 1 }, /Unrecognized key\(s\) in object: 'surplus'/],
    [{ ...f.context, pid: '48290' }, /pid: Expected number, received string/],
    [{ ...f.context, startedAt: 'yesterday' }, /startedAt: expected nanoseconds/],
    [{ ...f.context, spec: { ...(f.context.spec as object), tty: undefined } }, /spec\.tty: Required/],
  ];
  for (const [context, reason] of cases) {
    const parsed = parseRow('container', { state: 'RUNNING', version: 2, context: JSON.stringify(context) });
    assert.equal(parsed.ok, false);
    assert.match(parsed.ok ? '' : parsed.reason, reason);
  }
});

test('property: any valid context round-trips through JSON and parseRow unchanged', () => {
  fc.assert(
    fc.property(sandboxContext, fc.constantFrom(...SANDBOX_STATES), (context, state) => {
      const text = JSON.stringify(context);
      const parsed = parseRow('sandbox', { state, version: SNAPSHOT_VERSION, context: text });
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
      assert.deepStrictEqual(parsed.context, JSON.parse(text));
    }),
  );
  fc.assert(
    fc.property(containerContext, fc.constantFrom(...CONTAINER_STATES), (context, state) => {
      const text = JSON.stringify(context);
      const parsed = parseRow('container', { state, version: SNAPSHOT_VERSION, context: text });
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
      assert.deepStrictEqual(parsed.context, JSON.parse(text));
    }),
  );
});

test('property: a deleted field or a wrong type is refused with a reason', () => {
  for (const [kind, arb] of [['sandbox', sandboxContext], ['container', containerContext]] as const) {
    fc.assert(
      fc.property(
        arb.chain((context) => mutate(kind, context)),
        ({ context, what }) => {
          const parsed = parseRow(kind, { state: 'UNKNOWN', version: SNAPSHOT_VERSION, context: JSON.stringify(context) });
          assert.equal(parsed.ok, false, `${kind}: ${what} was taken`);
          assert.ok(!parsed.ok && parsed.reason.length > 0);
        },
      ),
    );
  }
});

test('property: parseRow never throws, whatever the row holds', () => {
  const anyRow = fc.record({
    state: fc.oneof(fc.string(), fc.constantFrom(...SANDBOX_STATES, ...CONTAINER_STATES)),
    version: fc.oneof(fc.integer({ min: -2, max: 4 }), fc.double()),
    context: fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))),
  });
  fc.assert(
    fc.property(fc.constantFrom<ActorKind>('sandbox', 'container'), anyRow, (kind, r) => {
      const parsed = parseRow(kind, r);
      assert.equal(typeof parsed.ok, 'boolean');
      if (!parsed.ok) assert.ok(parsed.reason.length > 0);
    }),
  );
  // Not even a row object that is not one (a bad cast of a SQLite row).
  assert.equal(parseRow('sandbox', null as unknown as RowInput).ok, false);
});
