/**
 * The inspector through a real daemon: the actor tree, each actor's chart and history, live
 * transitions over server-sent events, and Prometheus metrics, all on loopback.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { Daemon, REPO, eventually, podConfig, tempPaths } from './daemon.js';

const daemon = new Daemon(tempPaths('pc-insp-'));
const base = (): string => `http://127.0.0.1:${daemon.inspectorPort}`;
const getJson = async <T>(path: string): Promise<T> => (await fetch(`${base()}${path}`)).json() as Promise<T>;

interface Tree { pods: { id: string; state: string; name: string; namespace: string; ip: string; containers: unknown[] }[] }
interface Detail { kind: string; state: string; why?: { summary: string; details: string[] }; history: { event: string; from: string | null; to: string; cause: string | null }[] }

before(async () => {
  await daemon.start();
});
after(async () => {
  await daemon.dispose();
});

test('the page is self-contained: no asset from elsewhere', async () => {
  const res = await fetch(`${base()}/`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /<title>podchart inspector<\/title>/);
  assert.ok(!/(src|href)=["']https?:/.test(html), 'no external scripts, styles or images');
  assert.match(html, /new EventSource\(withToken\('\/api\/events'\)\)/);
  // Its one other asset, the layout library, comes from the daemon itself.
  assert.match(html, /script\.src = withToken\('\/assets\/elk\.js'\)/);
  const elk = await fetch(`${base()}/assets/elk.js`);
  assert.equal(elk.status, 200);
  assert.match(elk.headers.get('content-type') ?? '', /^text\/javascript/);
  const script = await elk.text();
  assert.ok(script.length > 100_000 && script.includes('g.ELK = f()'), 'the elkjs bundle, defining the global ELK');
});

test('the tree, an actor with its persisted history, and its chart from the machine', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('inspected') });
  const tree = await getJson<Tree>('/api/actors');
  const pod = tree.pods.find((p) => p.id === podSandboxId);
  assert.equal(pod?.state, 'RUNNING');
  assert.equal(pod?.name, 'inspected');
  assert.match(pod?.ip ?? '', /^10\./);
  const detail = await getJson<Detail>(`/api/actors/${podSandboxId}`);
  assert.equal(detail.kind, 'sandbox');
  assert.deepEqual(detail.history.map((h) => h.to), ['PENDING.creating', 'RUNNING']);
  // The CRI call that set each transition off: the effect's completion inherits its cause.
  assert.match(detail.history[0]?.cause ?? '', /^RunPodSandbox#\d+$/);
  assert.equal(detail.history[1]?.cause, detail.history[0]?.cause);
  // Why it is in its state, in words, as `podchart explain` says it.
  assert.match(detail.why?.summary ?? '', /^Ready since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by RunPodSandbox \(call #\d+\)$/);
  assert.ok(detail.why?.details.some((d) => /^network: 10\./.test(d)), JSON.stringify(detail.why));
  const chart = await getJson<{ initial: string; transitions: { from: string; event: string; to: string }[] }>('/api/charts/sandbox');
  assert.equal(chart.initial, 'UNKNOWN');
  assert.ok(chart.transitions.some((t) => t.from === 'RUNNING' && t.event === 'STOP' && t.to === 'STOPPING'));
  assert.equal((await fetch(`${base()}/api/actors/${'0'.repeat(64)}`)).status, 404);
});

test('an actor\'s history comes in pages; bad paging is refused with a message; a removed pod stays listed', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('paged') });
  await daemon.cri.call('StopPodSandbox', { podSandboxId });
  type Page = Detail & { historyBefore: number | null; history: { seq: number; to: string }[] };
  const newest = await getJson<Page>(`/api/actors/${podSandboxId}?limit=1`);
  assert.deepEqual(newest.history.map((h) => h.to), ['STOPPED']);
  assert.ok(newest.historyBefore, 'an older page exists');
  assert.ok(newest.why, 'the first page says why');
  const older = await getJson<Page>(`/api/actors/${podSandboxId}?limit=2&before=${newest.historyBefore}`);
  assert.deepEqual(older.history.map((h) => h.to), ['RUNNING', 'STOPPING.pause']);
  assert.equal(older.why, null, 'why is told with the newest rows only');
  const last = await getJson<Page>(`/api/actors/${podSandboxId}?limit=1000&before=${older.historyBefore}`);
  assert.deepEqual(last.history.map((h) => h.to), ['PENDING.creating']);
  assert.equal(last.historyBefore, null, 'the oldest page says so');
  // The stop's timeline: every step StopPodSandbox set off, with the slowest marked.
  const stopCause = newest.history.at(-1) as unknown as { cause: string };
  assert.match(stopCause.cause, /^StopPodSandbox#\d+$/);
  const line = await getJson<{ cause: string; steps: { actorId: string; kind: string; to: string; ms: number }[]; slowest: number | null }>(`/api/calls/${encodeURIComponent(stopCause.cause)}`);
  assert.deepEqual(line.steps.map((st) => [st.actorId, st.kind, st.to]), [[podSandboxId, 'sandbox', 'STOPPING.pause'], [podSandboxId, 'sandbox', 'STOPPED']]);
  assert.equal(line.slowest, 1, 'the stop itself took longer than its first step');
  assert.equal((await fetch(`${base()}/api/calls/nonsense`)).status, 400);
  assert.equal((await fetch(`${base()}/api/calls/%E0`)).status, 400, 'a malformed escape is refused, and the daemon stays up');
  for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'before=-1', 'before=1.5']) {
    const r = await fetch(`${base()}/api/actors/${podSandboxId}?${bad}`);
    assert.equal(r.status, 400, bad);
    assert.match(((await r.json()) as { error: string }).error, /must be a whole number from 1 to \d+/, bad);
  }
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
  const tree = await getJson<Tree & { removed: { id: string; kind: string }[] }>('/api/actors');
  assert.equal(tree.removed[0]?.id, podSandboxId, 'the most recently removed first');
  const gone = await getJson<Page>(`/api/actors/${podSandboxId}`);
  assert.equal(gone.state, 'removed');
  assert.match(gone.why?.summary ?? '', /^Removed at .* by RemovePodSandbox \(call #\d+\)$/);
});

test('event streams are capped: the one past the cap gets 503 with a message, and a closed one frees its place', async () => {
  const { MAX_EVENT_STREAMS } = await import('../inspector/server.js');
  const open: AbortController[] = [];
  try {
    for (let i = 0; i < MAX_EVENT_STREAMS; i++) {
      const c = new AbortController();
      const r = await fetch(`${base()}/api/events`, { signal: c.signal });
      open.push(c);
      assert.equal(r.status, 200);
    }
    const refused = await fetch(`${base()}/api/events`);
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as { error: string }).error, /too many event streams are open \(\d+\)/);
    open.pop()?.abort();
    const again = await (async () => {
      for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
        const c = new AbortController();
        const r = await fetch(`${base()}/api/events`, { signal: c.signal });
        if (r.status === 200) return c;
        await r.body?.cancel();
        await new Promise((resolve) => setImmediate(resolve));
      }
      return null;
    })();
    assert.ok(again, 'a place freed by a closed stream is taken again');
    open.push(again);
  } finally {
    for (const c of open) c.abort();
  }
});

test('transitions arrive live over server-sent events', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('live') });
  const seen: { actorId: string; event: string; to: string }[] = [];
  let opened = false;
  const req = request(`${base()}/api/events`, (res) => {
    let buf = '';
    res.on('data', (chunk: Buffer) => {
      opened = true; // the server subscribes before it writes its first line
      buf += chunk.toString();
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (data) seen.push(JSON.parse(data.slice(6)) as { actorId: string; event: string; to: string });
      }
    });
  });
  req.end();
  try {
    // The stream is open once the server wrote its comment line; a STOP then shows up within a second.
    await eventually('the event stream to open', () => opened);
    await daemon.cri.call('StopPodSandbox', { podSandboxId });
    const stop = await eventually('the STOP transition', () => seen.find((t) => t.actorId === podSandboxId && t.to === 'STOPPED'), 1_000);
    assert.equal(stop.event, 'stopSandbox.done');
    assert.ok(seen.some((t) => t.actorId === podSandboxId && t.event === 'STOP' && t.to === 'STOPPING.pause'));
  } finally {
    req.destroy();
  }
});

test('Prometheus metrics: CRI calls by method and code, latencies, actors by kind and state, transitions, effects, restore time, event-loop delay, process and Node.js metrics', async () => {
  await daemon.cri.call('PodSandboxStatus', { podSandboxId: 'f'.repeat(64) }).catch(() => undefined);
  const text = await (await fetch(`${base()}/metrics`)).text();
  assert.match(text, /^podchart_cri_calls_total\{code="OK",method="RunPodSandbox"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_cri_calls_total\{code="NOT_FOUND",method="PodSandboxStatus"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_cri_call_duration_seconds_bucket\{le="\+Inf",code="OK",method="RunPodSandbox"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_cri_call_duration_seconds_bucket\{le="0\.0001",code="OK",method="RunPodSandbox"\} \d+$/m, 'buckets from 100 µs');
  // Every actor's transitions, by machine and states; prom-client's process and Node.js metrics beside them.
  assert.match(text, /^podchart_actor_transitions_total\{machine="sandbox",from="[A-Za-z_.]+",to="RUNNING"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_effect_duration_seconds_count\{effect="createSandbox",result="ok"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_effect_duration_seconds_count\{effect="stopSandbox",result="ok"\} [1-9]\d*$/m);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds_count']) {
    assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? [0-9.e+-]+$`, 'm'), name);
  }
  // The handler alone (the figure compared with a Go server's) is part of the whole call.
  const sumOf = (histogram: string): number => Number(new RegExp(`^${histogram}_sum\\{code="OK",method="RunPodSandbox"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  const handler = sumOf('podchart_cri_handler_duration_seconds');
  assert.ok(handler > 0 && handler <= sumOf('podchart_cri_call_duration_seconds'), `handler ${handler} s, call ${sumOf('podchart_cri_call_duration_seconds')} s`);
  assert.match(text, /^podchart_actors\{kind="sandbox",state="RUNNING"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_actors\{kind="sandbox",state="STOPPED"\} [1-9]\d*$/m);
  assert.match(text, /^podchart_restore_duration_seconds_count 1$/m);
  // The event-loop delay: a real number of seconds, the worst at least the median.
  const stat = (name: string): number => Number(new RegExp(`^podchart_event_loop_delay_seconds\\{stat="${name}"\\} ([0-9.e-]+)$`, 'm').exec(text)?.[1]);
  assert.ok(stat('max') > 0 && stat('max') >= stat('p50') && stat('p99') >= stat('p50'), `max ${stat('max')}, p50 ${stat('p50')}, p99 ${stat('p99')}`);
  // The worst since the previous scrape: a delay the since-start worst already counts.
  const recent = stat('max_since_scrape');
  assert.ok(recent >= 0 && recent <= stat('max'), `max_since_scrape ${recent}, max ${stat('max')}`);
  // And how busy the loop was: a share, above zero once it has served calls.
  const busy = Number(/^podchart_event_loop_utilization ([0-9.e-]+)$/m.exec(text)?.[1]);
  assert.ok(busy > 0 && busy <= 1, `event-loop utilization ${busy}`);
});

test('podchart events follows transitions live; podchart inspect shows the chart with the state marked', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('followed') });
  const cli = spawn(join(REPO, 'bin', 'podchart'), ['events', '--inspector', `127.0.0.1:${daemon.inspectorPort}`, '--count', '2']);
  let output = '';
  let stderr = '';
  cli.stdout.on('data', (d: Buffer) => (output += d.toString()));
  cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
  try {
    await eventually('podchart events to connect', () => stderr.includes('following transitions at'));
  } catch (err) {
    cli.kill();
    throw err;
  }
  await daemon.cri.call('StopPodSandbox', { podSandboxId });
  assert.equal(await exited, 0);
  const lines = output.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0] ?? '', new RegExp(`sandbox ${podSandboxId.slice(0, 12)}  STOP  RUNNING → STOPPING\\.pause`));
  assert.match(lines[1] ?? '', /stopSandbox\.done {2}STOPPING\.pause → STOPPED/);
  const inspect = execFileSync(join(REPO, 'bin', 'podchart'), ['inspect', podSandboxId, '--root', daemon.paths.root]).toString();
  assert.match(inspect, /\* STOPPED\s+STOP\[needsTeardown\] → STOPPING/);
  assert.match(inspect, / {3}RUNNING\s+EXIT → STOPPED/);
});

test('restore decisions are recorded and marked, even when the observed state is the persisted one', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('restored') });
  await daemon.kill9();
  await daemon.start();
  const detail = await getJson<Detail>(`/api/actors/${podSandboxId}`);
  const last = detail.history[detail.history.length - 1];
  assert.equal(last?.cause, 'restore');
  assert.equal(last?.event, 'READY');
  assert.equal(last?.from, 'RUNNING');
  assert.equal(last?.to, 'RUNNING');
  const inspect = execFileSync(join(REPO, 'bin', 'podchart'), ['inspect', podSandboxId, '--root', daemon.paths.root]).toString();
  assert.match(inspect, /READY {2}RUNNING → RUNNING {2}\(restore decision\)/);
});

test('a request line no URL parser takes gets 400, and the daemon keeps serving', async () => {
  const { connect } = await import('node:net');
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect(daemon.inspectorPort, '127.0.0.1', () => socket.end('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.equal(daemon.exitCode, null);
  const { runtimeName } = await daemon.cri.call<{ runtimeName: string }>('Version', {});
  assert.equal(runtimeName, 'podchart');
  assert.equal((await fetch(`${base()}/api/actors`)).status, 200);
});

test('the last restore, actor by actor: persisted, observed, decided and why', async () => {
  const { podSandboxId } = await daemon.cri.call<{ podSandboxId: string }>('RunPodSandbox', { config: podConfig('restore-view') });
  await daemon.stop();
  await daemon.start();
  type Report = { startedAt: number; finishedAt: number | null; entries: { kind: string; id: string; persisted: string; decided: string[]; now: string; why: string; ms: number }[]; failed: unknown[] };
  const report = await getJson<Report>('/api/restore');
  assert.ok(report.finishedAt !== null && report.finishedAt >= report.startedAt);
  const entry = report.entries.find((e) => e.id === podSandboxId);
  assert.ok(entry, JSON.stringify(report.entries.map((e) => e.id)));
  assert.equal(entry.kind, 'sandbox');
  assert.equal(entry.persisted, 'RUNNING');
  assert.deepEqual(entry.decided, ['READY']);
  assert.equal(entry.now, 'RUNNING');
  assert.match(entry.why, /pinned namespaces are still mounted|alive with its recorded start time/);
  assert.ok(entry.ms >= 0);
  assert.deepEqual(report.failed, []);
  await daemon.cri.call('StopPodSandbox', { podSandboxId });
  await daemon.cri.call('RemovePodSandbox', { podSandboxId });
});
