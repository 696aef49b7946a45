/**
 * A chart as a graph for ELK (elkjs, the layout library Stately's own visualizer uses) to lay
 * out: states as nodes, nested states inside their parent as compound nodes, one edge per pair
 * of states labelled with every event between them (so a dozen transitions to REMOVING are a
 * few labelled edges, not a dozen arcs), and each state's in-place events listed on the state
 * instead of drawn as loops. ELK places the edge labels as boxes of their own, so they overlap
 * neither one another nor a state.
 *
 * `elkChart` is self-contained on purpose: the inspector page carries its source as is
 * (inspector/page.ts), so the page and the unit tests lay out the very same graph from the same
 * measurements. It may use nothing from outside its own body.
 */
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import type { ChartGraph } from './chart-graph.js';

/** A chart ready for `new ELK().layout(elk)`, with the text lines drawn in each state's box. */
export interface ElkChart {
  elk: ElkNode;
  /** By state id: the title, then the smaller lines ("runs …", "stays on …"). */
  lines: Record<string, string[]>;
  /** By state id: the height of those lines, a compound state's title band. */
  headers: Record<string, number>;
}

/** Font sizes and line heights the page draws with; the layout sizes boxes by them. */
export const CHART_TEXT = { titlePx: 12, titleLine: 16, smallPx: 10, smallLine: 13 } as const;

/**
 * `textWidth(text, px, bold)`: the drawn width of `text` at `px` pixels (a canvas measure in the
 * page); state titles are drawn bold (font-weight 600).
 * `text`: CHART_TEXT, passed in because this function can see nothing outside itself.
 */
export function elkChart(g: ChartGraph, textWidth: (text: string, px: number, bold: boolean) => number, text: typeof CHART_TEXT): ElkChart {
  const { titlePx: TITLE_PX, titleLine: TITLE_LINE, smallPx: SMALL_PX, smallLine: SMALL_LINE } = text;
  const PAD = 8, WRAP = 40;
  const byId: Record<string, ChartGraph['states'][number]> = {};
  g.states.forEach((s) => { byId[s.id] = s; });
  const isCompound = (id: string): boolean => g.states.some((c) => c.parent === id);
  const shortName = (id: string): string => id.slice(id.lastIndexOf('.') + 1);
  // "stays on: A, B, C" broken into lines of about WRAP characters.
  const wrapped = (head: string, items: string[]): string[] => {
    const out: string[] = [];
    let line = head;
    items.forEach((item, i) => {
      const piece = item + (i < items.length - 1 ? ',' : '');
      if (line.length + piece.length + 1 > WRAP && line !== head) { out.push(line); line = '  ' + piece; } else line += ' ' + piece;
    });
    out.push(line);
    return out;
  };
  const lines: Record<string, string[]> = {};
  const headers: Record<string, number> = {};
  const nodes: Record<string, ElkNode> = {};
  g.states.forEach((s) => {
    const drawn = [shortName(s.id)];
    if (s.invokes.length) drawn.push('runs ' + s.invokes.join(', '));
    if (s.stays.length) drawn.push(...wrapped('stays on:', s.stays));
    lines[s.id] = drawn;
    const compound = isCompound(s.id);
    const widest = Math.max(...drawn.map((t, i) => (i === 0 ? textWidth(t, TITLE_PX, true) : textWidth(t, SMALL_PX, false))));
    const header = TITLE_LINE + (drawn.length - 1) * SMALL_LINE;
    headers[s.id] = header;
    nodes[s.id] = compound
      ? { id: s.id, children: [], edges: [], layoutOptions: { 'elk.padding': `[top=${header + 14},left=12,bottom=12,right=12]`, 'elk.nodeSize.minimum': `(${Math.ceil(widest + 2 * PAD)},0)`, 'elk.nodeSize.constraints': 'MINIMUM_SIZE' } }
      : { id: s.id, width: Math.max(90, Math.ceil(widest + 2 * PAD)), height: header + 12 };
  });
  const root: ElkNode = {
    id: '(root)',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      // Edges between nested states and the rest are laid out with everything else.
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      // Every position is page-global: the page draws without adding up parents' offsets.
      'elk.json.shapeCoords': 'ROOT',
      'elk.json.edgeCoords': 'ROOT',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
      'elk.spacing.nodeNode': '28',
      'elk.layered.spacing.nodeNodeBetweenLayers': '32',
      'elk.spacing.edgeNode': '14',
      'elk.spacing.edgeEdge': '10',
      'elk.spacing.edgeLabel': '4',
      'elk.layered.spacing.edgeNodeBetweenLayers': '14',
      'elk.layered.spacing.edgeEdgeBetweenLayers': '10',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
    },
    children: [],
    edges: [],
  };
  g.states.forEach((s) => { (s.parent ? nodes[s.parent] : root)?.children?.push(nodes[s.id] as ElkNode); });
  // An edge belongs to the innermost state holding both its ends (ELK's containment rule).
  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let p = byId[id]?.parent ?? null; p; p = byId[p]?.parent ?? null) out.push(p);
    return out;
  };
  const containerOf = (from: string, to: string): ElkNode => {
    if (to.startsWith(from + '.')) return nodes[from] as ElkNode;
    if (from.startsWith(to + '.')) return nodes[to] as ElkNode;
    const up = ancestors(to);
    const common = ancestors(from).find((a) => up.includes(a));
    return common ? (nodes[common] as ElkNode) : root;
  };
  const pairs: Record<string, string[]> = {};
  const order: string[] = [];
  g.transitions.forEach((t) => {
    if (t.from === t.to || !byId[t.from] || !byId[t.to]) return;
    const key = t.from + '>' + t.to;
    if (!pairs[key]) { pairs[key] = []; order.push(key); }
    if (!pairs[key].includes(t.label)) pairs[key].push(t.label);
  });
  order.forEach((key, i) => {
    const [from, to] = key.split('>') as [string, string];
    const events = pairs[key] as string[];
    const edge: ElkExtendedEdge = {
      id: 'e' + i + ':' + key,
      sources: [from],
      targets: [to],
      labels: [{ text: events.join('\n'), width: Math.ceil(Math.max(...events.map((e) => textWidth(e, SMALL_PX, false))) + 4), height: events.length * SMALL_LINE + 2 }],
    };
    containerOf(from, to).edges?.push(edge);
  });
  return { elk: root, lines, headers };
}
