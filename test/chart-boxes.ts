/**
 * What a readable chart drawing must hold, checked on its laid-out boxes (from ELK's output in
 * the unit test, from the page's DOM in the browser test): no two edge labels overlap, no label
 * overlaps a state, states do not overlap one another, and a nested state or a label inside a
 * compound state sits below the compound's title, never across its border.
 */
export interface Box {
  kind: 'state' | 'compound' | 'label';
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** A compound state's title band, at its top. */
  header?: number;
}

/** Half a pixel of rounding is no overlap. */
const SLACK = 0.5;

function intersects(a: Box, b: Box): boolean {
  return a.x < b.x + b.width - SLACK && b.x < a.x + a.width - SLACK && a.y < b.y + b.height - SLACK && b.y < a.y + a.height - SLACK;
}

function insideBody(inner: Box, outer: Box): boolean {
  return inner.x >= outer.x - SLACK && inner.x + inner.width <= outer.x + outer.width + SLACK &&
    inner.y >= outer.y + (outer.header ?? 0) - SLACK && inner.y + inner.height <= outer.y + outer.height + SLACK;
}

const named = (b: Box): string => `${b.kind} ${JSON.stringify(b.id)} at (${Math.round(b.x)},${Math.round(b.y)} ${Math.round(b.width)}×${Math.round(b.height)})`;

/** Every rule broken, in words; empty when the drawing is clean. */
export function layoutProblems(boxes: Box[]): string[] {
  const problems: string[] = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i] as Box;
      const b = boxes[j] as Box;
      if (!intersects(a, b)) continue;
      const compound = a.kind === 'compound' ? a : b.kind === 'compound' ? b : null;
      const other = compound === a ? b : a;
      // Inside a compound state's body is where its nested states and their edges belong.
      if (compound && other.kind !== 'compound' && insideBody(other, compound)) continue;
      if (compound && other.kind === 'compound' && (insideBody(a, b) || insideBody(b, a))) continue;
      problems.push(`${named(a)} overlaps ${named(b)}`);
    }
  }
  return problems;
}
