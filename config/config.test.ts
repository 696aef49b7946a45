import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, loadConfig, parseArgs } from './config.js';

function withFile(content: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'podchart-config-'));
  try {
    const path = join(dir, 'config.json');
    writeFileSync(path, content);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('embedded defaults when there is no config file', () => {
  const config = loadConfig(parseArgs(['--config', '/nonexistent/podchart.json']));
  assert.deepEqual(config, DEFAULTS);
  assert.equal(config.socket, '/run/podchart/podchart.sock');
});

test('the file overrides defaults, flags override the file', () => {
  withFile(JSON.stringify({ socket: '/tmp/a.sock', logLevel: 'debug', runtimeHandlers: { kata: { path: '/bin/kata' } } }), (path) => {
    const config = loadConfig(parseArgs(['--config', path, '--socket=/tmp/b.sock', '--pretty']));
    assert.equal(config.socket, '/tmp/b.sock');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.logPretty, true);
    assert.deepEqual(Object.keys(config.runtimeHandlers).sort(), ['crun', 'kata', 'runc']);
  });
});

test('bad config is refused with a message that names the problem', () => {
  withFile('{ not json', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /not valid JSON/));
  withFile('{"sockett": "/x"}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /unknown key "sockett"/));
  withFile('{"defaultRuntimeHandler": "kata"}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /"kata" is not in runtimeHandlers/));
  withFile('{"cgroupDriver": "v3"}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /cgroupDriver must be/));
  assert.throws(() => parseArgs(['--bogus']), /unknown flag --bogus/);
  assert.throws(() => parseArgs(['--socket']), /needs a value/);
});

test('streamingAddress: host:port with port 0 meaning any; anything else is refused', () => {
  assert.equal(loadConfig(parseArgs(['--config', '/nonexistent'])).streamingAddress, '127.0.0.1:0');
  assert.equal(loadConfig(parseArgs(['--config', '/nonexistent', '--streaming', '[::1]:10010'])).streamingAddress, '[::1]:10010');
  for (const bad of ['127.0.0.1', ':80', '127.0.0.1:70000', 'localhost:x', '']) {
    assert.throws(() => loadConfig(parseArgs(['--config', '/nonexistent', '--streaming', bad])), /streamingAddress must be host:port/, bad);
  }
});

test('durations a timer cannot hold are refused; the inspector off loopback needs a token file', () => {
  withFile('{"cniTimeoutMs": 3000000000}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /cniTimeoutMs must be a positive number of milliseconds up to 2147483647/));
  withFile('{"sandboxStopGraceSeconds": -1}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /sandboxStopGraceSeconds must be a positive number of seconds/));
  withFile('{"statsCollectionPeriodMs": 0}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /statsCollectionPeriodMs must be a positive number of milliseconds/));
  withFile('{"writableLayerUsagePeriodMs": 1e12}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /writableLayerUsagePeriodMs must be a positive number of milliseconds/));
  withFile('{"registries": {"requestTimeoutMs": "soon"}}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /registries.requestTimeoutMs must be/));
  assert.throws(() => loadConfig(parseArgs(['--config', '/nonexistent', '--inspector', '0.0.0.0:9680'])), /not a loopback address: set inspectorTokenFile/);
  withFile('{"inspectorTokenFile": "/etc/podchart/token"}', (path) => assert.equal(loadConfig(parseArgs(['--config', path, '--inspector', '0.0.0.0:9680'])).inspectorAddress, '0.0.0.0:9680'));
});

test('history keys: defaults 200 rows per actor and 1 h for removed actors; bad values refused', () => {
  assert.equal(DEFAULTS.historyPerActor, 200);
  assert.equal(DEFAULTS.removedHistoryRetentionSeconds, 3600);
  withFile('{"historyPerActor": 50, "removedHistoryRetentionSeconds": 0}', (path) => {
    const config = loadConfig(parseArgs(['--config', path]));
    assert.equal(config.historyPerActor, 50);
    assert.equal(config.removedHistoryRetentionSeconds, 0);
  });
  for (const bad of [0, -1, 2.5, '200', 1e9]) {
    withFile(JSON.stringify({ historyPerActor: bad }), (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /historyPerActor must be a whole number/));
  }
  for (const bad of [-1, '3600', 1e12, null]) {
    withFile(JSON.stringify({ removedHistoryRetentionSeconds: bad }), (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /removedHistoryRetentionSeconds must be/));
  }
});

test('image pull bounds: 128 layers, 3 at once, 1 GiB left free by default; bad values refused', () => {
  assert.equal(DEFAULTS.maxImageLayers, 128);
  assert.equal(DEFAULTS.pullLayerConcurrency, 3);
  assert.equal(DEFAULTS.imageFsReserveBytes, 1024 ** 3);
  withFile('{"maxImageLayers": 500, "pullLayerConcurrency": 1, "imageFsReserveBytes": 0}', (path) => {
    const config = loadConfig(parseArgs(['--config', path]));
    assert.deepEqual([config.maxImageLayers, config.pullLayerConcurrency, config.imageFsReserveBytes], [500, 1, 0]);
  });
  const bad: [string, unknown][] = [
    ['maxImageLayers', 0],
    ['maxImageLayers', 501],
    ['maxImageLayers', '128'],
    ['pullLayerConcurrency', 0],
    ['pullLayerConcurrency', 1.5],
    ['pullLayerConcurrency', 65],
    ['imageFsReserveBytes', -1],
    ['imageFsReserveBytes', null],
    ['imageFsReserveBytes', 1e300],
  ];
  for (const [key, value] of bad) {
    withFile(JSON.stringify({ [key]: value }), (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), new RegExp(`${key} must be a whole number from`)));
  }
});

test('dropInfraContainer: on by default, off by flag or file; anything but a boolean is refused', () => {
  assert.equal(loadConfig(parseArgs(['--config', '/nonexistent'])).dropInfraContainer, true);
  assert.equal(loadConfig(parseArgs(['--config', '/nonexistent', '--keep-infra-container'])).dropInfraContainer, false);
  assert.equal(loadConfig(parseArgs(['--config', '/nonexistent', '--keep-infra-container', '--drop-infra-container'])).dropInfraContainer, true);
  withFile('{"dropInfraContainer": false}', (path) => assert.equal(loadConfig(parseArgs(['--config', path])).dropInfraContainer, false));
  withFile('{"dropInfraContainer": false}', (path) => assert.equal(loadConfig(parseArgs(['--config', path, '--drop-infra-container'])).dropInfraContainer, true));
  withFile('{"dropInfraContainer": "yes"}', (path) => assert.throws(() => loadConfig(parseArgs(['--config', path])), /dropInfraContainer must be true or false, not "yes"/));
});
