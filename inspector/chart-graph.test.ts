import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { chartGraph, toMermaid } from './chart-graph.js';

const has = (g: ReturnType<typeof chartGraph>, from: string, event: string, to: string, guard: string | null = null): boolean =>
  g.transitions.some((t) => t.from === from && t.event === event && t.to === to && t.guard === guard);

test('the sandbox chart graph comes from the machine: states, nesting, effects, events, guards', () => {
  const g = chartGraph(sandboxMachine);
  assert.equal(g.initial, 'UNKNOWN');
  const ids = g.states.map((s) => s.id);
  for (const id of ['UNKNOWN', 'PENDING', 'PENDING.creating', 'PENDING.rollingBack', 'RUNNING', 'STOPPING', 'STOPPED', 'REMOVING', 'removed']) {
    assert.ok(ids.includes(id), id);
  }
  assert.equal(g.states.find((s) => s.id === 'PENDING.creating')?.parent, 'PENDING');
  assert.equal(g.states.find((s) => s.id === 'PENDING.creating')?.initial, true);
  assert.deepEqual(g.states.find((s) => s.id === 'STOPPING.pause')?.invokes, ['stopSandbox']);
  assert.equal(g.states.find((s) => s.id === 'STOPPING.containers')?.parent, 'STOPPING', 'a pod stop waits for its containers, drawn as a substate');
  assert.deepEqual(g.states.find((s) => s.id === 'REMOVING.pod')?.invokes, ['removeSandbox']);
  assert.equal(g.states.find((s) => s.id === 'removed')?.final, true);
  assert.ok(has(g, 'UNKNOWN', 'CREATE', 'PENDING.creating'));
  assert.ok(has(g, 'PENDING.creating', 'createSandbox.done', 'RUNNING'));
  assert.ok(has(g, 'RUNNING', 'REMOVE', 'REMOVING'));
  assert.ok(has(g, 'STOPPED', 'STOP', 'STOPPING', 'needsTeardown'));
  assert.ok(g.transitions.some((t) => t.from === 'STOPPING.containers' && t.to === 'STOPPING.pause' && t.event === 'containerStopDeadline passed'), 'the deadline is an edge');
  assert.ok(has(g, 'STOPPING.containers', 'always', 'STOPPING.pause', 'containersStopped'), 'moving on once the containers stopped is an edge');
  assert.ok(!g.transitions.some((t) => t.from === 'REMOVING' && t.event === 'REMOVE'), 'a refusal is no edge');
});

test('the container chart graph, and Mermaid text another tool can render', () => {
  const g = chartGraph(containerMachine);
  assert.ok(has(g, 'STARTING', 'startContainer.done', 'EXITED', 'hasExited'));
  assert.ok(has(g, 'RUNNING', 'STOP', 'STOPPING'));
  const text = toMermaid(g);
  assert.match(text, /^stateDiagram-v2\n {2}\[\*\] --> UNKNOWN\n/);
  assert.match(text, / {2}RUNNING --> STOPPING : STOP\n/);
  assert.match(text, / {2}removed --> \[\*\]\n/);
  assert.match(text, / {2}STARTING --> EXITED : startContainer\.done \[hasExited\]\n/);
});
