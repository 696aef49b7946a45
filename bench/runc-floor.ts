/**
 * The raw runc floor (issue 14, item 1): `runc run -d` and `runc exec` of a busybox bundle, with
 * no CRI runtime in between, on the same machine. No runtime that drives runc as a binary can
 * start a container faster than this; the report puts it beside both runtimes' numbers.
 */
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxLayer } from '../test/image-builder.js';

/** A bundle whose rootfs is the test busybox layer, unpacked as plain files. */
function busyboxBundle(dir: string): void {
  const rootfs = join(dir, 'rootfs');
  for (const e of busyboxLayer()) {
    const path = join(rootfs, e.path);
    if (e.type === 'dir') mkdirSync(path, { recursive: true });
    else if (e.type === 'file') {
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, e.content ?? Buffer.alloc(0), { mode: e.mode ?? 0o644 });
    } else if ((e.type === 'symlink' || e.type === 'hardlink') && e.linkname) {
      mkdirSync(join(path, '..'), { recursive: true });
      if (e.type === 'symlink') symlinkSync(e.linkname, path);
      else linkSync(join(rootfs, e.linkname), path);
    }
  }
  execFileSync('runc', ['spec', '--bundle', dir]);
  const specPath = join(dir, 'config.json');
  const spec = JSON.parse(readFileSync(specPath, 'utf8')) as { process: { args: string[]; terminal: boolean }; root: { readonly: boolean } };
  spec.process.args = ['/bin/busybox', 'sleep', '3600'];
  spec.process.terminal = false;
  writeFileSync(specPath, JSON.stringify(spec));
}

/** Medians (ms) of `runc run -d`, `runc exec … echo hi` and `runc delete --force`, over `runs`. */
export function runcFloor(base: string, runs: number): Record<string, number[]> {
  const bundle = join(base, 'bundle');
  const root = join(base, 'runc-root');
  mkdirSync(bundle, { recursive: true });
  busyboxBundle(bundle);
  const times: Record<string, number[]> = { 'runc run -d': [], 'runc exec echo hi': [], 'runc kill+delete': [] };
  const time = (what: string, args: string[]): void => {
    const started = performance.now();
    execFileSync('runc', ['--root', root, ...args], { stdio: 'ignore' });
    times[what]?.push(performance.now() - started);
  };
  try {
    for (let i = 0; i < runs; i++) {
      const id = `floor-${i}`;
      time('runc run -d', ['run', '-d', '--bundle', bundle, id]);
      time('runc exec echo hi', ['exec', id, '/bin/busybox', 'echo', 'hi']);
      time('runc kill+delete', ['delete', '--force', id]);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  return times;
}
