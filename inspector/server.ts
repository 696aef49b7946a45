/**
 * The statechart inspector: a page and a small JSON API served by the daemon on loopback, with
 * live transitions over server-sent events and Prometheus metrics. Every asset is served from
 * here: the page works without any connection to the internet.
 */
import { topState } from '../machines/state-path.js';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Supervisor } from '../actors/supervisor.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { supervisorMachine } from '../machines/supervisor.machine.js';
import { chartGraph, type ChartGraph } from './chart-graph.js';
import type { Metrics, ScrapedGauge } from './metrics.js';
import { INSPECTOR_PAGE } from './page.js';
import { parseAddress } from '../config/address.js';
import type { StreamingServer } from '../streaming/server.js';
import type { AddressInfo } from 'node:net';
import { refusal } from './access.js';
import { boundedSender } from './event-stream.js';
import { redactSecrets } from './redact.js';
import { explain } from './explain.js';
import { timeline, type Timeline, type TimelineStep } from './timeline.js';
import type { QuarantinedRow } from '../storage/quarantine.js';

export interface InspectorDeps {
  supervisor: Supervisor;
  metrics: Metrics;
  logger: Logger;
  /** The open exec and attach sessions (absent: the daemon serves no streams). */
  streaming?: Pick<StreamingServer, 'sessions' | 'onSessionsChanged'>;
}

const CHARTS: Record<string, ChartGraph> = {
  sandbox: chartGraph(sandboxMachine),
  container: chartGraph(containerMachine),
  supervisor: chartGraph(supervisorMachine),
};

/** The page's layout library, served from the daemon's own node_modules (the page works offline). */
const ELK_SCRIPT = createRequire(import.meta.url).resolve('elkjs/lib/elk.bundled.js');

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** Removed actors listed beside the tree (their history is kept for removedHistoryRetentionSeconds). */
const REMOVED_LISTED = 100;
/** History rows per page of an actor's detail, by default and at most (issue 15: huge histories are paged). */
const HISTORY_PAGE = 200;
const HISTORY_PAGE_MAX = 1000;
/** Event streams open at once, and what one may hold unsent before it is dropped. */
export const MAX_EVENT_STREAMS = 32;
export const EVENT_STREAM_BACKLOG_BYTES = 1024 * 1024;

function decodedOrNull(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

function callTimeline(supervisor: Supervisor, cause: string): Timeline {
  const kindOf = (id: string): TimelineStep['kind'] => {
    if (supervisor.view(id)) return 'sandbox';
    if (supervisor.containerView(id)) return 'container';
    return supervisor.removed(id)?.kind ?? 'unknown';
  };
  return timeline(cause, supervisor.transitionsOf(cause), kindOf);
}

/** `?limit=N&before=SEQ` of an actor's detail, or what is wrong with them. */
function historyPage(params: URLSearchParams): HistoryPage | string {
  const number = (name: string, max: number): number | null | string => {
    const text = params.get(name);
    if (text === null) return null;
    const n = Number(text);
    return /^\d+$/.test(text) && n >= 1 && n <= max ? n : `${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(text.slice(0, 40))}`;
  };
  const limit = number('limit', HISTORY_PAGE_MAX);
  const before = number('before', Number.MAX_SAFE_INTEGER);
  if (typeof limit === 'string') return limit;
  if (typeof before === 'string') return before;
  return { limit: limit ?? HISTORY_PAGE, before };
}

/** The actor tree: supervisor → pods → containers, and the actors removed lately. */
export function actorTree(supervisor: Supervisor) {
  return {
    supervisor: { id: 'supervisor', state: supervisor.rootState() },
    removed: supervisor.removedActors(REMOVED_LISTED),
    pods: supervisor.views().map((pod) => ({
      id: pod.id,
      kind: 'sandbox',
      name: pod.context.spec.metadata.name,
      namespace: pod.context.spec.metadata.namespace,
      labels: pod.context.spec.labels,
      state: pod.state,
      createdAt: pod.context.spec.createdAt,
      ip: pod.context.network?.ip ?? '',
      lastError: pod.context.lastError,
      containers: pod.context.containerIds.flatMap((cid) => {
        const c = supervisor.containerView(cid);
        return c
          ? [{ id: c.id, kind: 'container', name: c.context.spec.metadata.name, labels: c.context.spec.labels, state: c.state, createdAt: c.context.spec.createdAt, lastError: c.context.lastError }]
          : [];
      }),
    })),
  };
}

/** One page of an actor's history: the newest `limit` rows before seq `before`, and where the next page starts. */
interface HistoryPage {
  limit: number;
  before: number | null;
}

function actorDetail(deps: InspectorDeps, id: string, page: HistoryPage) {
  const { supervisor } = deps;
  const sessions = deps.streaming?.sessions().filter((s) => s.actorId === id) ?? [];
  const history = supervisor.history(id, page.limit + 1, page.before);
  // One more than asked for: whether there is an older page.
  const older = history.length > page.limit ? history.shift() : undefined;
  const paging = { historyBefore: older ? (history[0]?.seq ?? null) : null };
  // `why`: the same account `podchart explain` gives (inspector/explain.ts), shown on top of the
  // page; from the newest rows, so it is only given on the first page.
  const why = (kind: 'sandbox' | 'container', state: string, context: unknown) => (page.before === null ? explain(kind, state, context, history) : null);
  const pod = supervisor.view(id);
  if (pod) return { kind: 'sandbox', id, state: pod.state, why: why('sandbox', pod.state, pod.context), context: redactSecrets(pod.context), history, ...paging, sessions };
  const ctr = supervisor.containerView(id);
  if (ctr) return { kind: 'container', id, state: ctr.state, why: why('container', ctr.state, ctr.context), context: redactSecrets(ctr.context), history, ...paging, sessions };
  // A removed actor's history stays viewable for removedHistoryRetentionSeconds (issue 12, item 8).
  const gone = supervisor.removed(id);
  if (gone) return { kind: gone.kind, id, state: 'removed', why: why(gone.kind, 'removed', null), sandboxId: gone.sandboxId, removedAt: gone.removedAt, context: null, history, ...paging, sessions };
  return null;
}

/**
 * The rows restore refused (issue 13, item 7), as redactSecrets shows any context. A context that
 * is not JSON cannot be redacted, so it is withheld whole: only its length is shown.
 */
export function quarantineList(rows: readonly QuarantinedRow[]): QuarantineView[] {
  return rows.map(({ context, ...row }) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(context);
    } catch {
      return { ...row, context: null, contextWithheld: `not JSON (${context.length} characters): withheld, it may hold secrets` };
    }
    return { ...row, context: redactSecrets(parsed), contextWithheld: null };
  });
}

export type QuarantineView = Omit<QuarantinedRow, 'context'> & { context: unknown; contextWithheld: string | null };

/** Actors by kind and state, computed at scrape time. */
function actorGauge(supervisor: Supervisor): ScrapedGauge {
  return { name: 'podchart_actors', help: 'Actors by kind and top-level state.', labelNames: ['kind', 'state'], sample: () => {
    const counts = new Map<string, { labels: Record<string, string>; value: number }>();
    const add = (kind: string, state: string): void => {
      const top = topState(state);
      const k = `${kind}/${top}`;
      const cur = counts.get(k) ?? { labels: { kind, state: top }, value: 0 };
      cur.value += 1;
      counts.set(k, cur);
    };
    for (const p of supervisor.views()) add('sandbox', p.state);
    for (const c of supervisor.containerViews()) add('container', c.state);
    return [...counts.values()];
  } };
}

/** `token`: required of every request when set (a non-loopback bind needs one: config/config.ts). */
export function startInspector(address: string, deps: InspectorDeps, token: string | null = null): Promise<Server> {
  deps.metrics.addGauge(actorGauge(deps.supervisor));
  const { host, port } = parseAddress(address, 'inspectorAddress');
  let boundPort = port;
  let streams = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // A request line no URL parser takes (`GET //[ HTTP/1.1`) is the client's error, not ours.
    const url = URL.canParse(req.url ?? '/', 'http://inspector') ? new URL(req.url ?? '/', 'http://inspector') : null;
    if (!url) return json(res, 400, { error: 'malformed request path' });
    const refused = refusal(req, url, boundPort, token);
    if (refused) return json(res, refused.status, { error: refused.error });
    const path = url.pathname;
    if (req.method !== 'GET') return json(res, 405, { error: 'only GET' });
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(INSPECTOR_PAGE);
      return;
    }
    if (path === '/assets/elk.js') {
      readFile(ELK_SCRIPT).then(
        (script) => {
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'private, max-age=3600' });
          res.end(script);
        },
        (err: unknown) => json(res, 500, { error: `the layout library ${ELK_SCRIPT} could not be read: ${err instanceof Error ? err.message : String(err)}` }),
      );
      return;
    }
    if (path === '/metrics') {
      deps.metrics.text().then(
        (text) => {
          res.writeHead(200, { 'content-type': deps.metrics.contentType });
          res.end(text);
        },
        (err: unknown) => json(res, 500, { error: `metrics could not be collected: ${err instanceof Error ? err.message : String(err)}` }),
      );
      return;
    }
    if (path === '/api/actors') return json(res, 200, actorTree(deps.supervisor));
    if (path === '/api/restore') return json(res, 200, deps.supervisor.restoreReport());
    if (path === '/api/quarantine') return json(res, 200, quarantineList(deps.supervisor.store.quarantined()));
    // Host cleanup left after answered removals (actors/janitor.ts): what is left, and why not yet.
    if (path === '/api/cleanup') return json(res, 200, deps.supervisor.store.cleanup.list());
    const chart = /^\/api\/charts\/(sandbox|container|supervisor)$/.exec(path);
    if (chart?.[1]) return json(res, 200, CHARTS[chart[1]]);
    const actor = /^\/api\/actors\/([0-9a-f]{64})$/.exec(path);
    if (actor?.[1]) {
      const page = historyPage(url.searchParams);
      if (typeof page === 'string') return json(res, 400, { error: page });
      const detail = actorDetail(deps, actor[1], page);
      return detail ? json(res, 200, detail) : json(res, 404, { error: `no actor ${actor[1]}: no pod sandbox or container has this id, and none removed lately did` });
    }
    // One call's timeline across actors: `/api/calls/StopPodSandbox%2312`, or `/api/calls/restore`.
    // A malformed escape (`%E0`) is the client's error: decodeURIComponent would throw.
    const decoded = path.startsWith('/api/calls/') ? decodedOrNull(path) : null;
    const call = decoded === null ? null : /^\/api\/calls\/([A-Za-z]+#\d+|restore)$/.exec(decoded);
    if (call?.[1]) return json(res, 200, callTimeline(deps.supervisor, call[1]));
    if (path.startsWith('/api/calls/')) return json(res, 400, { error: 'a call is named as in the history\'s cause column: Method#number (the # as %23), or restore' });
    if (path === '/api/events') {
      if (streams >= MAX_EVENT_STREAMS) {
        return json(res, 503, { error: `too many event streams are open (${MAX_EVENT_STREAMS}): close one, or poll /api/actors instead` });
      }
      streams++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      // A reader that does not keep up is dropped, not buffered for without bound.
      const send = boundedSender(res, EVENT_STREAM_BACKLOG_BYTES, (backlogBytes) => {
        deps.logger.warn({ backlogBytes }, 'an inspector event stream fell behind and was dropped');
      });
      const off = deps.supervisor.onTransition((t) => send(`data: ${JSON.stringify(t)}\n\n`));
      // A session opening or ending is no transition: its own event, so the page follows it live.
      const offSessions = deps.streaming?.onSessionsChanged((actorId) => send(`event: sessions\ndata: ${JSON.stringify({ actorId })}\n\n`));
      send(': podchart transitions\n\n'); // after subscribing: a reader that saw it misses nothing
      res.on('close', () => {
        streams--;
        off();
        offSessions?.();
      });
      return;
    }
    json(res, 404, { error: `no such path ${path}` });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      boundPort = (server.address() as AddressInfo).port;
      deps.logger.info({ address }, 'inspector serving');
      resolve(server);
    });
  });
}

