/**
 * podchart's Prometheus metrics, through prom-client (issue 15, item 6): the CRI calls, pulls,
 * restore and call steps, gauges computed at scrape time, the transitions of every actor, and
 * prom-client's default process and Node.js metrics (CPU, memory, heap, GC, event-loop lag) in
 * the same registry. One registry per daemon, not prom-client's global one: tests run several
 * daemons' metrics in one process.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Labels = Record<string, string>;

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** CRI calls: kubelet's polls take well under a millisecond, so the buckets start at 100 µs (issue 14: their median). */
const CALL_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, ...SECONDS];

function histogram(registry: Registry, name: string, help: string, buckets: number[], labelNames: string[] = []): Histogram {
  return new Histogram({ name, help, labelNames, buckets, registers: [registry] });
}

/** A gauge whose samples are computed when /metrics is scraped. */
export interface ScrapedGauge {
  name: string;
  help: string;
  labelNames: readonly string[];
  sample: () => { labels: Labels; value: number }[];
}

/** podchart's metrics. Built once in bin/ and handed to whoever records. */
export class Metrics {
  readonly registry = new Registry();
  readonly criCalls = new Counter({ name: 'podchart_cri_calls_total', help: 'CRI calls by method and gRPC status code.', labelNames: ['code', 'method'], registers: [this.registry] });
  readonly criSeconds = histogram(this.registry, 'podchart_cri_call_duration_seconds', 'CRI call latency by method and gRPC status code, up to the reply encoded and written.', CALL_SECONDS, ['code', 'method']);
  /**
   * The handler alone: from the decoded request to the reply object, as go-grpc-prometheus times
   * a Go server's calls (containerd's grpc_server_handling_seconds), whose interceptor returns
   * before the reply is encoded and written. The like-for-like figure beside containerd's.
   */
  readonly criHandlerSeconds = histogram(this.registry, 'podchart_cri_handler_duration_seconds', 'CRI handler time by method and gRPC status code, without the reply\'s encoding and write (as go-grpc-prometheus times a Go server).', CALL_SECONDS, ['code', 'method']);
  readonly pullBytes = new Counter({ name: 'podchart_image_pull_bytes_total', help: 'Bytes of image layers and configs pulled.', registers: [this.registry] });
  readonly pullSeconds = histogram(this.registry, 'podchart_image_pull_duration_seconds', 'Image pull duration.', [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]);
  readonly restoreSeconds = histogram(this.registry, 'podchart_restore_duration_seconds', 'Time to restore every actor at start.', SECONDS);
  readonly stepSeconds = histogram(this.registry, 'podchart_call_step_duration_seconds', 'The programs run, waits and database commits of each CRI call (rpc), or of restore and the exit watches.', SECONDS, ['rpc', 'step']);
  /** By machine and state path: bounded by the charts' states, whatever the number of actors. */
  readonly transitions = new Counter({
    name: 'podchart_actor_transitions_total',
    help: 'Committed actor transitions by machine (sandbox, container) and the states they left and entered (from="" where no earlier state is known).',
    labelNames: ['machine', 'from', 'to'],
    registers: [this.registry],
  });

  /** Each chart effect (createSandbox, startContainer, …) from its state's commit to its end. */
  readonly effectSeconds = histogram(this.registry, 'podchart_effect_duration_seconds', 'Duration of each actor effect by name (createSandbox, startContainer, ...) and result (ok, error).', SECONDS, ['effect', 'result']);

  constructor() {
    // prom-client's defaults: process CPU, memory and file descriptors, heap spaces, GC durations,
    // event-loop lag, active handles, under the nodejs_ and process_ prefixes.
    collectDefaultMetrics({ register: this.registry });
  }

  addGauge({ name, help, labelNames, sample }: ScrapedGauge): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, value } of sample()) this.set(labels, value);
      },
    });
  }

  /** The exposition text (format 0.0.4) of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
