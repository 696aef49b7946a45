/**
 * The statechart inspector: a page and a small JSON API served by the daemon on loopback, with
 * live transitions over server-sent events and Prometheus metrics. Every asset is served from
 * here: the page works without any connection to the internet.
 */
import { topState } from '../machines/state-path.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Supervisor } from '../actors/supervisor.js';
import { sandboxMachine } from '../machines/sandbox.machine.js';
import { containerMachine } from '../machines/container.machine.js';
import { chartGraph, type ChartGraph } from './chart-graph.js';
import type { Metrics, ScrapedGauge } from './metrics.js';
import { INSPECTOR_PAGE } from './page.js';
import { parseAddress } from '../config/address.js';
import type { StreamingServer } from '../streaming/server.js';
import type { AddressInfo } from 'node:net';
import { refusal } from './access.js';
import { redactSecrets } from './redact.js';
import { explain } from './explain.js';
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
};

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** The actor tree: supervisor → pods → containers. */
export function actorTree(supervisor: Supervisor) {
  return {
    supervisor: { id: 'supervisor', state: supervisor.rootState() },
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

function actorDetail(deps: InspectorDeps, id: string) {
  const { supervisor } = deps;
  const pod = supervisor.view(id);
  const sessions = deps.streaming?.sessions().filter((s) => s.actorId === id) ?? [];
  // `why`: the same account `podchart explain` gives (inspector/explain.ts), shown on top of the page.
  if (pod) {
    const history = supervisor.history(id, 200);
    return { kind: 'sandbox', id, state: pod.state, why: explain('sandbox', pod.state, pod.context, history), context: redactSecrets(pod.context), history, sessions };
  }
  const ctr = supervisor.containerView(id);
  if (ctr) {
    const history = supervisor.history(id, 200);
    return { kind: 'container', id, state: ctr.state, why: explain('container', ctr.state, ctr.context, history), context: redactSecrets(ctr.context), history, sessions };
  }
  // A removed actor's history stays viewable for removedHistoryRetentionSeconds (issue 12, item 8).
  const gone = supervisor.removed(id);
  if (gone) {
    const history = supervisor.history(id, 200);
    return { kind: gone.kind, id, state: 'removed', why: explain(gone.kind, 'removed', null, history), sandboxId: gone.sandboxId, removedAt: gone.removedAt, context: null, history, sessions };
  }
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
    if (path === '/api/quarantine') return json(res, 200, quarantineList(deps.supervisor.store.quarantined()));
    // Host cleanup left after answered removals (actors/janitor.ts): what is left, and why not yet.
    if (path === '/api/cleanup') return json(res, 200, deps.supervisor.store.cleanup.list());
    const chart = /^\/api\/charts\/(sandbox|container)$/.exec(path);
    if (chart?.[1]) return json(res, 200, CHARTS[chart[1]]);
    const actor = /^\/api\/actors\/([0-9a-f]{64})$/.exec(path);
    if (actor?.[1]) {
      const detail = actorDetail(deps, actor[1]);
      return detail ? json(res, 200, detail) : json(res, 404, { error: `no actor ${actor[1]}` });
    }
    if (path === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      const off = deps.supervisor.onTransition((t) => res.write(`data: ${JSON.stringify(t)}\n\n`));
      // A session opening or ending is no transition: its own event, so the page follows it live.
      const offSessions = deps.streaming?.onSessionsChanged((actorId) => res.write(`event: sessions\ndata: ${JSON.stringify({ actorId })}\n\n`));
      res.write(': podchart transitions\n\n'); // after subscribing: a reader that saw it misses nothing
      req.on('close', () => {
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

