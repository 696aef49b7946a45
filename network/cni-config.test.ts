/**
 * Loading the CNI conf dir as libcni does: lexical order, first valid wins, every skipped file
 * explained; and the NetworkReady condition built from it. Real files in a temp dir, real plugin
 * binaries from the Debian package (/usr/lib/cni) plus a temp bin dir.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findPlugin, loadNetworkConfig, networkReady } from './cni-config.js';

const SYSTEM_BIN = '/usr/lib/cni';
let tmp = '';
let bin = '';

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'pct-cniconf-'));
  bin = join(tmp, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'mine'), '#!/bin/sh\nexit 0\n');
  await chmod(join(bin, 'mine'), 0o755);
  await writeFile(join(bin, 'notexec'), '#!/bin/sh\nexit 0\n'); // mode 0644: not a plugin
});

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function confDir(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir);
  for (const [f, text] of Object.entries(files)) await writeFile(join(dir, f), text);
  return dir;
}

const bridgeConf = (name: string, version = '1.0.0'): Record<string, unknown> => ({
  cniVersion: version,
  name,
  type: 'bridge',
  bridge: 'pctnone0',
  ipam: { type: 'host-local', subnet: '10.199.0.0/24' },
});

describe('findPlugin', () => {
  test('the first executable file of that name in the bin dirs; never a path', async () => {
    assert.equal(await findPlugin('mine', [SYSTEM_BIN, bin]), join(bin, 'mine'));
    assert.equal(await findPlugin('bridge', [bin, SYSTEM_BIN]), join(SYSTEM_BIN, 'bridge'));
    assert.equal(await findPlugin('notexec', [bin]), null);
    assert.equal(await findPlugin('nosuch', [bin, SYSTEM_BIN]), null);
    assert.equal(await findPlugin('../bin/mine', [join(tmp, 'conf')]), null);
    assert.equal(await findPlugin(join(bin, 'mine'), ['/']), null);
  });
});

describe('loadNetworkConfig', () => {
  test('skips malformed files in lexical order, each with its reason, and takes the first valid one', async () => {
    const dir = await confDir('mixed', {
      '10-bad.conf': '{ "cniVersion": "1.0.0", ',
      '11-array.json': '[1, 2]',
      '12-noname.conflist': JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }),
      '13-nover.conflist': JSON.stringify({ name: 'n', plugins: [{ type: 'bridge' }] }),
      '14-oldver.conf': JSON.stringify(bridgeConf('old', '0.2.0')),
      '15-empty.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'e', plugins: [] }),
      '16-notype.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ bridge: 'x' }] }),
      '20-x.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'bridge' }, { type: 'foo' }, { type: 'bar' }] }),
      '25-list-in-conf.conf': JSON.stringify({ cniVersion: '1.0.0', name: 'l', plugins: [{ type: 'bridge' }] }),
      '30-good.conf': JSON.stringify(bridgeConf('good')),
      '40-later.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'later', plugins: [{ type: 'bridge' }] }),
      '05-ignored.txt': 'not a config',
    });
    const loaded = await loadNetworkConfig(dir, [SYSTEM_BIN, bin]);
    assert.equal(loaded.file, join(dir, '30-good.conf'));
    // A single-plugin .conf becomes a list of one; name and version live on the list.
    assert.deepEqual(loaded.config, { cniVersion: '1.0.0', name: 'good', plugins: [bridgeConf('good')] });
    const reasons = loaded.problems;
    assert.equal(reasons.length, 9, reasons.join('\n'));
    assert.match(reasons[0] ?? '', /^10-bad\.conf: not valid JSON: /);
    assert.equal(reasons[1], '11-array.json: not a JSON object');
    assert.equal(reasons[2], '12-noname.conflist: no "name"');
    assert.equal(reasons[3], '13-nover.conflist: no "cniVersion"');
    assert.match(reasons[4] ?? '', /^14-oldver\.conf: cniVersion "0\.2\.0" not supported/);
    assert.equal(reasons[5], '15-empty.conflist: "plugins" is empty');
    assert.equal(reasons[6], '16-notype.conflist: plugin 0 has no valid "type"');
    assert.equal(reasons[7], `20-x.conflist: plugins "foo", "bar" not found in ${SYSTEM_BIN}, ${bin}`);
    assert.match(reasons[8] ?? '', /^25-list-in-conf\.conf: has "plugins"/);
    assert.deepEqual(networkReady(loaded), { ready: true, reason: '', message: '' });
  });

  test('a .json file may hold a list; plugins from any bin dir; disableCheck kept', async () => {
    const list = { cniVersion: '0.4.0', name: 'j', disableCheck: true, plugins: [{ type: 'bridge' }, { type: 'mine', capabilities: { portMappings: true } }] };
    const dir = await confDir('json', { '99-net.json': JSON.stringify(list) });
    const loaded = await loadNetworkConfig(dir, [SYSTEM_BIN, bin]);
    assert.deepEqual(loaded.config, list);
    assert.deepEqual(loaded.problems, []);
  });

  test('a missing plugin leaves the network not ready, saying which and where', async () => {
    const dir = await confDir('missing', {
      '10-net.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'm', plugins: [{ type: 'bridge' }, { type: 'nosuchplugin' }] }),
    });
    const loaded = await loadNetworkConfig(dir, ['/opt/cni/bin', SYSTEM_BIN]);
    assert.equal(loaded.config, null);
    assert.equal(loaded.file, null);
    const ready = networkReady(loaded);
    assert.equal(ready.ready, false);
    assert.equal(ready.reason, 'NetworkPluginNotReady');
    assert.equal(ready.message, `no valid CNI config in ${dir}: 10-net.conflist: plugin "nosuchplugin" not found in /opt/cni/bin, ${SYSTEM_BIN}`);
  });

  test('an empty or absent conf dir: not ready, "no CNI config in <dir>"; a later file is picked up on the next call', async () => {
    const dir = await confDir('empty', {});
    const absent = join(tmp, 'absent');
    for (const d of [dir, absent]) {
      const ready = networkReady(await loadNetworkConfig(d, [SYSTEM_BIN]));
      assert.deepEqual(ready, { ready: false, reason: 'NetworkPluginNotReady', message: `no CNI config in ${d}` });
    }
    await writeFile(join(dir, '10-late.conf'), JSON.stringify(bridgeConf('late')));
    const loaded = await loadNetworkConfig(dir, [SYSTEM_BIN]);
    assert.equal(loaded.config?.name, 'late');
    assert.equal(networkReady(loaded).ready, true);
  });
});
