/**
 * A chart's drawable graph, read from the machine definition itself (so the picture can never
 * drift from the code): states with their nesting, transitions with event and guard. Also as
 * Mermaid, for `podchart chart` and for any tool that renders it.
 */
import { eventLabel } from '../actors/actor-util.js';
import type { AnyStateMachine, AnyStateNode } from 'xstate';

export interface ChartState {
  /** Dotted path, e.g. "PENDING.creating". */
  id: string;
  parent: string | null;
  final: boolean;
  initial: boolean;
  /** Effects run while in this state (invoke sources). */
  invokes: string[];
  /**
   * Events handled without leaving the state (idempotent calls accepted, refusals, updates of
   * the context), with their guards: drawn as a list on the state rather than as loops.
   */
  stays: string[];
}

export interface ChartTransition {
  from: string;
  to: string;
  /** The event, with effect completions shown as "createSandbox.done" / ".error". */
  event: string;
  guard: string | null;
  /** The event with its guard, as drawn and listed: "startContainer.done [hasExited]". */
  label: string;
}

export interface ChartGraph {
  machine: string;
  initial: string;
  states: ChartState[];
  transitions: ChartTransition[];
  /** Events the machine handles in place in every state (transitions on its root). */
  staysEverywhere: string[];
}

function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

/** Effect completions and delays as the history names them ("stopSandbox.done", "containerStopDeadline passed"). */
const eventName = eventLabel;

function guardName(guard: unknown): string | null {
  if (!guard) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard && 'type' in guard) return String(guard.type);
  return 'guard';
}

function withGuard(event: string, guard: string | null): string {
  return guard ? `${event} [${guard}]` : event;
}

function transition(from: string, to: string, event: string, guard: string | null): ChartTransition {
  return { from, to, event, guard, label: withGuard(event, guard) };
}

export function chartGraph(machine: AnyStateMachine): ChartGraph {
  const states: ChartState[] = [];
  const transitions: ChartTransition[] = [];
  const staysEverywhere: string[] = [];
  const visit = (node: AnyStateNode): void => {
    const id = pathOf(node);
    const stays: string[] = [];
    if (id !== '') {
      const parentNode = node.parent;
      const parent = parentNode && pathOf(parentNode) !== '' ? pathOf(parentNode) : null;
      const initialOfParent = parentNode?.initial?.target?.[0];
      states.push({
        id,
        parent,
        final: node.type === 'final',
        initial: initialOfParent ? pathOf(initialOfParent) === id : false,
        invokes: node.invoke.map((i) => (typeof i.src === 'string' ? i.src : i.id)),
        stays,
      });
    }
    for (const [type, list] of node.transitions) {
      for (const t of list) {
        const targets = (t.target ?? []).filter((target) => target !== node);
        if (targets.length < (t.target?.length ?? 0) || targets.length === 0) {
          const label = withGuard(eventName(type), guardName(t.guard));
          const into = id === '' ? staysEverywhere : stays;
          if (!into.includes(label)) into.push(label);
        }
        for (const target of targets) {
          transitions.push(transition(id || '(root)', pathOf(target), eventName(type), guardName(t.guard)));
        }
      }
    }
    // Eventless transitions (a pod's stop moving on once its containers have stopped).
    for (const t of node.always ?? []) {
      for (const target of t.target ?? []) {
        transitions.push(transition(id || '(root)', pathOf(target), 'always', guardName(t.guard)));
      }
    }
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root);
  const initial = machine.root.initial?.target?.[0];
  return { machine: machine.id, initial: initial ? pathOf(initial) : '', states, transitions, staysEverywhere };
}

/** Mermaid stateDiagram-v2 text of a chart. */
export function toMermaid(graph: ChartGraph): string {
  const safe = (id: string): string => id.replace(/\./g, '_');
  const lines = ['stateDiagram-v2', `  [*] --> ${safe(graph.initial)}`];
  for (const s of graph.states) {
    if (s.invokes.length) lines.push(`  ${safe(s.id)} : ${s.id} (runs ${s.invokes.join(', ')})`);
    if (s.final) lines.push(`  ${safe(s.id)} --> [*]`);
  }
  for (const t of graph.transitions) {
    if (t.from === '(root)') continue;
    lines.push(`  ${safe(t.from)} --> ${safe(t.to)} : ${t.label}`);
  }
  return `${lines.join('\n')}\n`;
}
