/**
 * State names as types, derived from the charts themselves (XState infers each machine's state
 * value): a view's state or a comparison with a state that is not in the chart fails to compile,
 * so no list of state strings outside machines/ can drift from it (issue 13, item 3).
 */

/** The dotted paths of a state value: `{ STOPPING: 'pause' }` is "STOPPING.pause". */
export type StatePath<V> = V extends string ? V : { [K in keyof V & string]: `${K}.${StatePath<V[K]>}` }[keyof V & string];

/** The top-level state of a path: "STOPPING" of "STOPPING.pause". */
export type TopState<P extends string> = P extends `${infer T}.${string}` ? T : P;

export function topState<P extends string>(path: P): TopState<P> {
  return path.split('.')[0] as TopState<P>;
}
