/**
 * cgroup paths per driver (runc's rules), the v1/v2 file parsers, and the reader against real
 * cgroups made here: a shell moved into them burns CPU and holds ~20 MB, then the counters are read.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { InvalidArgument } from '../errors/catalogue.js';
import {
  CGROUP_ROOT,
  cgroupDir,
  cgroupRelativePath,
  cgroupsPathFor,
  expandSlice,
  hostCgroupLayout,
  parentRelativePath,
  readCgroupStats,
  readCgroupStatsAt,
  statsFromV1,
  statsFromV2,
  sharesFromWeight,
  sumCgroupStats,
  ZERO_STATS,
  type CgroupLayout,
} from './cgroup-stats.js';

describe('cgroup paths', () => {
  test('systemd slices expand as runc expands them', () => {
    assert.equal(expandSlice('system.slice'), '/system.slice');
    assert.equal(expandSlice('-.slice'), '/');
    assert.equal(expandSlice('kubepods-besteffort-pod12.slice'), '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice');
    for (const bad of ['kubepods', 'a--b.slice', 'a/b.slice', '.slice']) assert.throws(() => expandSlice(bad), InvalidArgument, bad);
  });

  test('a cgroupsPath per driver, as the effects give it to runc', () => {
    assert.equal(cgroupsPathFor('', 'abc', 'cgroupfs'), '/podchart/abc');
    assert.equal(cgroupsPathFor('/kubepods/pod1', 'abc', 'cgroupfs'), '/kubepods/pod1/abc');
    assert.equal(cgroupsPathFor('', 'abc', 'systemd'), 'system.slice:podchart:abc');
    assert.equal(cgroupRelativePath('/podchart/abc', 'cgroupfs'), '/podchart/abc');
    assert.equal(cgroupRelativePath('kubepods/abc', 'cgroupfs'), '/kubepods/abc');
    assert.equal(cgroupRelativePath('system.slice:podchart:abc', 'systemd'), '/system.slice/podchart-abc.scope');
    assert.equal(cgroupRelativePath('kubepods-pod1.slice:podchart:abc', 'systemd'), '/kubepods.slice/kubepods-pod1.slice/podchart-abc.scope');
    assert.equal(cgroupRelativePath(':podchart:abc', 'systemd'), '/system.slice/podchart-abc.scope');
    assert.throws(() => cgroupRelativePath('/podchart/abc', 'systemd'), InvalidArgument);
    assert.equal(parentRelativePath('kubepods-pod1.slice', 'systemd'), '/kubepods.slice/kubepods-pod1.slice');
    assert.equal(parentRelativePath('/kubepods/pod1', 'cgroupfs'), '/kubepods/pod1');
    const dir = cgroupDir('system.slice:podchart:abc', 'systemd');
    assert.equal(dir.v1('memory'), '/sys/fs/cgroup/memory/system.slice/podchart-abc.scope');
    assert.equal(dir.v2, '/sys/fs/cgroup/system.slice/podchart-abc.scope');
  });
});

describe('parsers', () => {
  test('v1: working set is usage less inactive file, clamped at zero; the unlimited limit is null', () => {
    const stat = 'cache 10\nrss 1\ntotal_rss 4096\ntotal_inactive_file 1000\ntotal_pgfault 7\ntotal_pgmajfault 2\n';
    const s = statsFromV1({ cpuacctUsage: '123456\n', memoryUsage: '5000\n', memoryStat: stat, memoryLimit: '9223372036854771712\n', pidsCurrent: '3\n' });
    assert.deepEqual(s, {
      ...ZERO_STATS, cpuUsageNs: 123456n, memoryUsageBytes: 5000n, memoryWorkingSetBytes: 4000n, memoryRssBytes: 4096n,
      pageFaults: 7n, majorPageFaults: 2n, pids: 3, memoryLimitBytes: null,
    });
    const full = statsFromV1({
      cpuacctUsage: '300', memoryUsage: '5000', memoryStat: `${stat}total_cache 900\ntotal_mapped_file 300\ntotal_swap 20\n`, memoryLimit: '8192', pidsCurrent: '5',
      cpuacctUsageUser: '200\n', cpuacctUsageSys: '100\n', cpuStat: 'nr_periods 10\nnr_throttled 4\nthrottled_time 777\n',
      memoryFailcnt: '3\n', memoryOomControl: 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n', procs: '17\n18\n',
      pidsMax: 'max\n', cpuShares: '1024\n', cpuQuota: '-1\n', cpuPeriod: '100000\n',
    });
    assert.deepEqual(
      [full.cpuUserNs, full.cpuSystemNs, full.cfsPeriods, full.cfsThrottledPeriods, full.cfsThrottledNs, full.memoryCacheBytes, full.memoryMappedFileBytes, full.memorySwapBytes, full.memoryFailcnt, full.oomKills],
      [200n, 100n, 10n, 4n, 777n, 900n, 300n, 20n, 3n, 2n],
    );
    assert.deepEqual([full.pids, full.processes, full.pidsLimit, full.cpuShares, full.cpuQuotaUs, full.cpuPeriodUs], [5, 2, null, 1024n, null, 100000n], 'no quota is -1: null');
    assert.equal(statsFromV1({ cpuacctUsage: null, memoryUsage: null, memoryStat: null, memoryLimit: null, pidsCurrent: null, cpuQuota: '50000', pidsMax: '64' }).cpuQuotaUs, 50000n);
    const clamped = statsFromV1({ cpuacctUsage: null, memoryUsage: '500', memoryStat: stat, memoryLimit: '1048576', pidsCurrent: null });
    assert.equal(clamped.memoryWorkingSetBytes, 0n);
    assert.equal(clamped.memoryLimitBytes, 1048576n);
    assert.equal(clamped.cpuUsageNs, 0n);
    assert.equal(clamped.pids, 0);
  });

  test('v2: usage_usec in nanoseconds, anon as rss, "max" as no limit', () => {
    const s = statsFromV2({
      cpuStat: 'usage_usec 250\nuser_usec 200\nsystem_usec 50\n',
      memoryCurrent: '8192\n',
      memoryStat: 'anon 4096\nfile 4096\ninactive_file 1024\npgfault 11\npgmajfault 1\n',
      memoryMax: 'max\n',
      pidsCurrent: '2\n',
    });
    assert.deepEqual(s, {
      ...ZERO_STATS, cpuUsageNs: 250_000n, cpuUserNs: 200_000n, cpuSystemNs: 50_000n, memoryUsageBytes: 8192n, memoryWorkingSetBytes: 7168n,
      memoryRssBytes: 4096n, memoryCacheBytes: 4096n, pageFaults: 11n, majorPageFaults: 1n, pids: 2, memoryLimitBytes: null,
    });
    const full = statsFromV2({
      cpuStat: 'usage_usec 250\nnr_periods 9\nnr_throttled 3\nthrottled_usec 5\n', memoryCurrent: '1', memoryStat: 'file_mapped 64\n', memoryMax: 'max', pidsCurrent: '1',
      memorySwapCurrent: '128\n', memoryEvents: 'low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n', procs: '1\n', pidsMax: '100\n', cpuWeight: '100\n', cpuMax: 'max 100000\n',
    });
    assert.deepEqual(
      [full.cfsPeriods, full.cfsThrottledPeriods, full.cfsThrottledNs, full.memoryMappedFileBytes, full.memorySwapBytes, full.memoryFailcnt, full.oomKills, full.processes, full.pidsLimit, full.cpuQuotaUs, full.cpuPeriodUs],
      [9n, 3n, 5000n, 64n, 128n, 6n, 1n, 1, 100n, null, 100000n],
    );
    assert.equal(full.cpuShares, 2597n, 'weight 100 as shares');
    assert.deepEqual([1n, 39n, 10000n].map(sharesFromWeight), [2n, 998n, 262144n], 'the ends of the range, and runc\'s weight for 1024 shares');
    assert.equal(statsFromV2({ cpuStat: null, memoryCurrent: null, memoryStat: null, memoryMax: null, pidsCurrent: null, cpuMax: '50000 100000' }).cpuQuotaUs, 50000n);
    assert.equal(statsFromV2({ cpuStat: null, memoryCurrent: null, memoryStat: null, memoryMax: '4096', pidsCurrent: null }).memoryLimitBytes, 4096n);
  });

  test('a sum adds every counter and knows no limit', () => {
    const one = statsFromV1({ cpuacctUsage: '10', memoryUsage: '100', memoryStat: 'total_rss 50\n', memoryLimit: '1000', pidsCurrent: '1' });
    const sum = sumCgroupStats([one, one]);
    assert.equal(sum.cpuUsageNs, 20n);
    assert.equal(sum.memoryUsageBytes, 200n);
    assert.equal(sum.memoryRssBytes, 100n);
    assert.equal(sum.pids, 2);
    assert.equal(sum.memoryLimitBytes, null);
  });
});

/** The hierarchies to test on this host: the one runc uses, and a hybrid host's cgroup2 mount too. */
function hierarchies(): { label: string; layout: CgroupLayout; dirs: string[]; full: boolean }[] {
  const name = `podchart-test-${process.pid}`;
  const main = hostCgroupLayout();
  const out = [
    main.version === 2
      ? { label: 'v2', layout: main, dirs: [join(CGROUP_ROOT, name)], full: true }
      : { label: 'v1', layout: main, dirs: ['cpuacct', 'memory', 'pids'].map((c) => join(CGROUP_ROOT, c, name)), full: true },
  ];
  // Hybrid: only cpu.stat is there (the controllers are bound to v1), which exercises the v2 cpu path.
  const unified = join(CGROUP_ROOT, 'unified');
  if (main.version === 1 && existsSync(join(unified, 'cgroup.controllers'))) {
    out.push({ label: 'v2 (hybrid unified mount)', layout: { root: unified, version: 2 }, dirs: [join(unified, name)], full: false });
  }
  return out;
}

function lineFrom(child: ChildProcess, want: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').includes(want)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before printing "${want}": ${out}`)));
  });
}

async function rmdirWhenEmpty(dir: string): Promise<void> {
  // A reaped process may still be leaving the cgroup for a moment (EBUSY): poll, bounded.
  for (let i = 0; ; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i > 100) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('reading a real cgroup', () => {
  const made: string[] = [];
  let child: ChildProcess | null = null;
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child?.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    for (const dir of made.reverse()) await rmdirWhenEmpty(dir);
  });

  test('a process that burns CPU and holds memory shows in every counter; a removed cgroup reads as null', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
    const rel = `/podchart-test-${process.pid}`;
    const targets = hierarchies();
    for (const t of targets) for (const dir of t.dirs) {
      await mkdir(dir);
      made.push(dir);
    }
    // Waits for a line on stdin so that all its work happens inside the cgroups, then holds ~20 MB.
    const script = 'read _; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; x=$(head -c 20000000 /dev/zero | tr "\\0" a); echo ready; read _; echo ${#x}';
    const sh = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    child = sh;
    assert.ok(sh.pid, 'the shell started');
    for (const t of targets) for (const dir of t.dirs) await writeFile(join(dir, 'cgroup.procs'), String(sh.pid));
    for (const t of targets) {
      const procs = await readFile(join(t.dirs[0] ?? '', 'cgroup.procs'), 'utf8');
      assert.ok(procs.split('\n').includes(String(sh.pid)), `${t.label}: the shell is in the cgroup`);
    }
    const ready = lineFrom(sh, 'ready');
    sh.stdin?.write('\n');
    await ready;

    for (const t of targets) {
      const s = readCgroupStats(rel, 'cgroupfs', t.layout);
      assert.ok(s, `${t.label}: the cgroup exists`);
      assert.ok(s.cpuUsageNs > 0n, `${t.label}: cpu ${s.cpuUsageNs}`);
      if (!t.full) continue;
      assert.ok(s.memoryUsageBytes > 10_000_000n, `${t.label}: memory usage ${s.memoryUsageBytes}`);
      assert.ok(s.memoryWorkingSetBytes > 10_000_000n && s.memoryWorkingSetBytes <= s.memoryUsageBytes, `${t.label}: working set ${s.memoryWorkingSetBytes}`);
      assert.ok(s.memoryRssBytes > 10_000_000n, `${t.label}: rss ${s.memoryRssBytes}`);
      assert.ok(s.pageFaults > 0n, `${t.label}: page faults ${s.pageFaults}`);
      assert.equal(s.pids, 1, `${t.label}: the waiting shell is the one process`);
      // Counters only grow: a second read is at least the first.
      const again = readCgroupStatsAt(rel, t.layout);
      assert.ok(again && again.cpuUsageNs >= s.cpuUsageNs, `${t.label}: cpu does not go back`);
      // The metrics' counters are read only when asked for: zero otherwise.
      assert.equal(s.processes, 0, `${t.label}: not read for the stats RPCs`);
      const full = readCgroupStats(rel, 'cgroupfs', t.layout, true);
      assert.ok(full, `${t.label}: the cgroup exists`);
      assert.equal(full.processes, 1, `${t.label}: the shell is the one process in cgroup.procs`);
      assert.ok(full.cpuUserNs > 0n && full.cpuUserNs + full.cpuSystemNs <= full.cpuUsageNs + 50_000_000n, `${t.label}: user ${full.cpuUserNs} + system ${full.cpuSystemNs} is about the usage ${full.cpuUsageNs}`);
    }

    const exited = new Promise<number | null>((r) => sh.once('exit', r));
    sh.stdin?.end('\n');
    assert.equal(await exited, 0, 'the shell ended normally');
    for (const dir of made.reverse()) await rmdirWhenEmpty(dir);
    made.length = 0;
    for (const t of targets) assert.equal(readCgroupStats(rel, 'cgroupfs', t.layout), null, `${t.label}: gone reads as null`);
  });

  test('a cgroup that never existed reads as null', async () => {
    const layout = hostCgroupLayout();
    assert.equal(readCgroupStats(`/podchart-test-none-${process.pid}`, 'cgroupfs', layout), null);
    assert.equal(readCgroupStats(`system.slice:podchart:none-${process.pid}`, 'systemd', layout), null);
  });
});
