/**
 * A small Prometheus registry (text exposition format 0.0.4): counters and histograms with labels.
 * Enough for podchart's few series without a dependency.
 */
type Labels = Record<string, string>;

const key = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
const render = (labels: Labels): string => {
  // Sorted: the same series always reads the same.
  const parts = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const cur = this.values.get(k) ?? { labels, value: 0 };
    cur.value += by;
    this.values.set(k, cur);
  }
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${render(labels)} ${value}`);
    return lines.join('\n');
  }
}

export class Histogram {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {}
  observe(labels: Labels, value: number): void {
    const k = key(labels);
    const s = this.series.get(k) ?? { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i] = (s.counts[i] ?? 0) + 1;
    });
    s.sum += value;
    s.count += 1;
    this.series.set(k, s);
  }
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${render({ ...s.labels, le: String(b) })} ${s.counts[i] ?? 0}`));
      lines.push(`${this.name}_bucket${render({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${this.name}_sum${render(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${render(s.labels)} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** A gauge whose samples are computed at scrape time. */
export class Gauge {
  constructor(readonly name: string, readonly help: string, private readonly sample: () => { labels: Labels; value: number }[]) {}
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const { labels, value } of this.sample()) lines.push(`${this.name}${render(labels)} ${value}`);
    return lines.join('\n');
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** CRI calls: kubelet's polls take well under a millisecond, so the buckets start at 100 µs (issue 14: their median). */
const CALL_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, ...SECONDS];

/** podchart's metrics. Built once in bin/ and handed to whoever records. */
export class Metrics {
  readonly criCalls = new Counter('podchart_cri_calls_total', 'CRI calls by method and gRPC status code.');
  readonly criSeconds = new Histogram('podchart_cri_call_duration_seconds', 'CRI call latency by method and gRPC status code, up to the reply encoded and written.', CALL_SECONDS);
  /**
   * The handler alone: from the decoded request to the reply object, as go-grpc-prometheus times
   * a Go server's calls (containerd's grpc_server_handling_seconds), whose interceptor returns
   * before the reply is encoded and written. The like-for-like figure beside containerd's.
   */
  readonly criHandlerSeconds = new Histogram('podchart_cri_handler_duration_seconds', 'CRI handler time by method and gRPC status code, without the reply\'s encoding and write (as go-grpc-prometheus times a Go server).', CALL_SECONDS);
  readonly pullBytes = new Counter('podchart_image_pull_bytes_total', 'Bytes of image layers and configs pulled.');
  readonly pullSeconds = new Histogram('podchart_image_pull_duration_seconds', 'Image pull duration.', [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]);
  readonly restoreSeconds = new Histogram('podchart_restore_duration_seconds', 'Time to restore every actor at start.', SECONDS);
  readonly stepSeconds = new Histogram('podchart_call_step_duration_seconds', 'The programs run, waits and database commits of each CRI call (rpc), or of restore and the exit watches.', SECONDS);
  private readonly gauges: Gauge[] = [];

  addGauge(gauge: Gauge): void {
    this.gauges.push(gauge);
  }

  text(): string {
    const parts = [this.criCalls, this.criSeconds, this.criHandlerSeconds, this.pullBytes, this.pullSeconds, this.restoreSeconds, this.stepSeconds, ...this.gauges].map((m) => m.text());
    return `${parts.join('\n')}\n`;
  }
}
