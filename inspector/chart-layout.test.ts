import { test } from 'node:test';
import assert from 'node:assert/strict';
import elkjs from 'elkjs';
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { supervisorMachine } from '../machines/supervisor.machine.js';
import { chartGraph } from './chart-graph.js';
import { CHART_TEXT, elkChart } from './chart-layout.js';
import { layoutProblems, type Box } from '../test/chart-boxes.js';

// elkjs is CommonJS typed as ESM: its constructor is the module's `default` (also set at run time).
const ELK = elkjs.default;

/** A stand-in for the page's canvas measure: a wide sans-serif's average advance. */
const textWidth = (text: string, px: number, bold: boolean): number => text.length * px * (bold ? 0.68 : 0.62);

function boxesOf(node: ElkNode, out: Box[], headerOf: (id: string) => number): Box[] {
  for (const child of node.children ?? []) {
    const compound = (child.children ?? []).length > 0;
    out.push({ kind: compound ? 'compound' : 'state', id: child.id, x: child.x ?? NaN, y: child.y ?? NaN, width: child.width ?? NaN, height: child.height ?? NaN, header: compound ? headerOf(child.id) : 0 });
    boxesOf(child, out, headerOf);
  }
  for (const edge of node.edges ?? []) {
    for (const l of edge.labels ?? []) out.push({ kind: 'label', id: l.text ?? '', x: l.x ?? NaN, y: l.y ?? NaN, width: l.width ?? NaN, height: l.height ?? NaN });
  }
  return out;
}

function edgesOf(node: ElkNode): ElkExtendedEdge[] {
  return [...(node.edges ?? []), ...(node.children ?? []).flatMap(edgesOf)];
}

for (const machine of [sandboxMachine, containerMachine, supervisorMachine]) {
  test(`the ${machine.id} chart laid out by ELK: no label overlaps another or a state, nesting kept`, async () => {
    const g = chartGraph(machine);
    const { elk, headers } = elkChart(g, textWidth, CHART_TEXT);
    const laid = await new ELK().layout(elk);
    const header = (id: string): number => headers[id] ?? 0;
    const boxes = boxesOf(laid, [], header);
    assert.equal(boxes.filter((b) => b.kind !== 'label').length, g.states.length, 'every state is a box');
    assert.ok(boxes.every((b) => [b.x, b.y, b.width, b.height].every(Number.isFinite)), 'every box is placed');
    assert.deepEqual(layoutProblems(boxes), []);
    // Nested states inside their parent (coordinates are page-global: elk.json.shapeCoords ROOT).
    for (const s of g.states.filter((st) => st.parent)) {
      const child = boxes.find((b) => b.id === s.id) as Box;
      const parent = boxes.find((b) => b.id === s.parent) as Box;
      assert.ok(child.x >= parent.x && child.x + child.width <= parent.x + parent.width && child.y >= parent.y + header(parent.id), `${s.id} inside ${s.parent}`);
    }
    // One edge per pair of states, every event of the pair on its label, each routed.
    const pairs = new Set(g.transitions.filter((t) => t.from !== t.to && t.from !== '(root)').map((t) => `${t.from}>${t.to}`));
    const edges = edgesOf(laid);
    assert.equal(edges.length, pairs.size);
    assert.ok(edges.every((e) => (e.sections ?? []).length > 0), 'every edge is routed');
    for (const t of g.transitions.filter((tr) => tr.from !== tr.to)) {
      const edge = edges.find((e) => e.sources[0] === t.from && e.targets[0] === t.to);
      assert.ok(edge?.labels?.[0]?.text?.split('\n').includes(t.event + (t.guard ? ` [${t.guard}]` : '')), `${t.from} → ${t.to}: ${t.event}`);
    }
  });
}

test('in-place events are listed on their state, not drawn as loops', () => {
  const g = chartGraph(containerMachine);
  const { lines } = elkChart(g, textWidth, CHART_TEXT);
  assert.match((lines.EXITED ?? []).join(' '), /stays on: .*STOP/);
  assert.ok(!g.transitions.some((t) => t.from === t.to), 'no self-edge');
  assert.ok(g.staysEverywhere.includes('POD_READY'), 'the root\'s in-place events are kept apart');
  assert.deepEqual(lines.RUNNING?.[0], 'RUNNING');
  assert.deepEqual(elkChart(chartGraph(sandboxMachine), textWidth, CHART_TEXT).lines['PENDING.creating']?.[0], 'creating', 'a nested state is titled by its own name inside its parent');
});

test('the overlap rules catch what they are for', () => {
  const box = (kind: Box['kind'], id: string, x: number, y: number, width: number, height: number, header = 0): Box => ({ kind, id, x, y, width, height, header });
  assert.equal(layoutProblems([box('label', 'a', 0, 0, 50, 13), box('label', 'b', 40, 5, 50, 13)]).length, 1, 'two labels across each other');
  assert.equal(layoutProblems([box('label', 'a', 0, 0, 50, 13), box('state', 'S', 49, 0, 90, 30)]).length, 1, 'a label across a state');
  assert.deepEqual(layoutProblems([box('label', 'a', 0, 0, 50, 13), box('label', 'b', 50, 0, 50, 13)]), [], 'touching is no overlap');
  assert.deepEqual(layoutProblems([box('compound', 'P', 0, 0, 300, 200, 30), box('state', 'P.a', 10, 40, 90, 30), box('label', 'x', 10, 100, 40, 13)]), [], 'inside a compound\'s body');
  assert.equal(layoutProblems([box('compound', 'P', 0, 0, 300, 200, 30), box('label', 'x', 10, 20, 40, 13)]).length, 1, 'across a compound\'s title');
  assert.equal(layoutProblems([box('compound', 'P', 0, 0, 300, 200, 30), box('label', 'x', 280, 100, 40, 13)]).length, 1, 'across a compound\'s border');
});
