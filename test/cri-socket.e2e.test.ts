/**
 * The CRI socket takes any HTTP/2 `:authority`, as containerd and CRI-O do: the socket path that
 * kubelet 1.26's Go client sends (stock crictl here), "localhost", nothing at all. Many calls share
 * one connection (HPACK tables reused and evicted), server streams and 16 MiB requests get through,
 * and clients that are not HTTP/2 at all leave the daemon serving the next one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect as connectHttp2, constants as h2 } from 'node:http2';
import { connect as connectNet } from 'node:net';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { status as grpcStatus } from '@grpc/grpc-js';
import hpack from 'hpack.js';
import { Daemon, tempPaths } from './daemon.js';
import { CriClient } from './cri-client.js';
import { rejects } from './grpc-assert.js';
import { CRICTL, needsCrictl } from './stock-clients.js';
import { PREFACE, encodeFrame } from '../cri/h2-authority.js';
import { loadCri } from '../proto/load.js';

const run = promisify(execFile);
const paths = tempPaths('pc-sock-');
const daemon = new Daemon(paths, [], {}, 'none');
const versionDef = loadCri().runtimeService['Version'];

before(() => daemon.start());
after(async () => {
  await daemon.stop();
  rmSync(paths.base, { recursive: true, force: true });
});

function crictl(...args: string[]): Promise<{ stdout: string }> {
  return run(CRICTL ?? 'crictl', ['--runtime-endpoint', `unix://${paths.socket}`, '--image-endpoint', `unix://${paths.socket}`, '--timeout', '20s', ...args]);
}

const frame = (type: number, flags: number, streamId: number, payload: Buffer): Buffer => Buffer.concat(encodeFrame(type, flags, streamId, payload));

/** Sends raw bytes on a fresh connection and resolves with what came back once the daemon closed it. */
function sendRaw(bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connectNet(paths.socket);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got)));
    s.write(bytes);
  });
}

async function versionOverRawHttp2(authority: string | null): Promise<string> {
  const encoder = hpack.compressor.create({ table: { maxSize: 4096 } });
  const headers = [[':method', 'POST'], [':scheme', 'http'], [':path', '/runtime.v1.RuntimeService/Version'],
    ...(authority === null ? [] : [[':authority', authority]]), ['content-type', 'application/grpc'], ['te', 'trailers']];
  encoder.write(headers.map(([name = '', value = '']) => ({ name, value })));
  const block = encoder.read() ?? Buffer.alloc(0);
  const message = versionDef?.requestSerialize({}) ?? Buffer.alloc(0);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
  const s = connectNet(paths.socket);
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  s.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x4, 1, block), frame(0x0, 0x1, 1, body)]));
  // The reply's DATA frame carries the encoded VersionResponse; its bytes hold the runtime name.
  const deadline = AbortSignal.timeout(10_000);
  try {
    while (!Buffer.concat(got).includes('podchart')) await once(s, 'data', { signal: deadline });
  } catch {
    return `no reply (${Buffer.concat(got).length} bytes)`;
  } finally {
    s.destroy();
  }
  return 'podchart';
}

describe('any :authority', () => {
  test('stock crictl (grpc-go, sends the socket path as :authority) is served', { skip: needsCrictl }, async () => {
    const { stdout } = await crictl('version');
    assert.match(stdout, /RuntimeName:\s+podchart/);
    assert.match(stdout, /RuntimeApiVersion:\s+v1/);
    const info = JSON.parse((await crictl('info')).stdout) as { status: { conditions: { type: string; status: boolean }[] } };
    assert.equal(info.status.conditions.find((c) => c.type === 'RuntimeReady')?.status, true);
    assert.equal((JSON.parse((await crictl('pods', '-o', 'json')).stdout) as { items: unknown[] }).items.length, 0);
  });

  test('the socket path, localhost, or no authority at all', async () => {
    for (const authority of [paths.socket, 'localhost', '', 'with space', null]) {
      assert.equal(await versionOverRawHttp2(authority), 'podchart', `authority ${JSON.stringify(authority)}`);
    }
  });

  test('3000 calls on one connection, with a socket-path authority and headers that churn the HPACK table', async () => {
    const session = connectHttp2('http://localhost', { createConnection: () => connectNet(paths.socket) });
    let closed = false;
    session.on('close', () => (closed = true));
    const call = (i: number): Promise<string> => new Promise((resolve, reject) => {
      // nghttp2's encoder indexes these; a new 300-byte value each call evicts the older entries.
      const req = session.request({
        [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: '/runtime.v1.RuntimeService/Version',
        [h2.HTTP2_HEADER_AUTHORITY]: paths.socket, 'content-type': 'application/grpc', te: 'trailers',
        'grpc-timeout': `${10_000 + i}m`, 'x-trace': `${i}-${'t'.repeat(300)}`,
      });
      const chunks: Buffer[] = [];
      let grpcStatusValue: string | undefined;
      req.on('response', (headers) => (grpcStatusValue = headers['grpc-status'] as string | undefined));
      req.on('trailers', (trailers: Record<string, string | undefined>) => (grpcStatusValue = trailers['grpc-status']));
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('error', reject);
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (grpcStatusValue !== '0') return reject(new Error(`call ${i}: grpc-status ${grpcStatusValue}`));
        const reply = versionDef?.responseDeserialize(body.subarray(5)) as { runtimeName: string };
        resolve(reply.runtimeName);
      });
      const message = versionDef?.requestSerialize({}) ?? Buffer.alloc(0);
      req.end(Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]));
    });
    for (let batch = 0; batch < 60; batch++) {
      const names = await Promise.all(Array.from({ length: 50 }, (_, j) => call(batch * 50 + j)));
      assert.ok(names.every((n) => n === 'podchart'), `batch ${batch}`);
    }
    assert.equal(closed, false, 'one connection served them all');
    session.close();
  });

  test('a server stream (GetContainerEvents) stays open beside unary calls on the same connection', async () => {
    const client = new CriClient(paths.socket, paths.socket);
    const stream = (client.runtime as unknown as { GetContainerEvents(req: object): NodeJS.ReadableStream & { cancel(): void } }).GetContainerEvents({});
    let ended = false;
    stream.on('end', () => (ended = true));
    stream.on('error', () => (ended = true));
    await once(stream, 'metadata', { signal: AbortSignal.timeout(10_000) });
    assert.equal((await client.call<{ runtimeName: string }>('Version')).runtimeName, 'podchart');
    assert.equal(ended, false, 'the stream is still open');
    stream.cancel();
    client.close();
  });

  test('16 MiB requests reach the handler; beyond is RESOURCE_EXHAUSTED', async () => {
    const client = new CriClient(paths.socket, paths.socket);
    const config = (bytes: number): object => ({
      metadata: { name: 'big', namespace: 'e2e', uid: 'big', attempt: 0 },
      annotations: { big: 'x'.repeat(bytes) },
    });
    // Just under 16 MiB arrives whole and is judged by the handler (annotations over their limit).
    await rejects(client.call('RunPodSandbox', { config: config(16 * 1024 * 1024 - 4096) }), grpcStatus.INVALID_ARGUMENT, /annotations total/);
    await rejects(client.call('RunPodSandbox', { config: config(17 * 1024 * 1024) }), grpcStatus.RESOURCE_EXHAUSTED, /larger than max/);
    assert.equal((await client.call<{ runtimeName: string }>('Version')).runtimeName, 'podchart');
    client.close();
  });
});

describe('clients that are not HTTP/2, or break it, leave the daemon serving', () => {
  test('HTTP/1.1, garbage, a broken HPACK block, and 200 connections opened and dropped', async () => {
    await sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await sendRaw(Buffer.from('\x00\x01garbage\xff\xfe'.repeat(100), 'latin1'));
    await sendRaw(Buffer.concat([PREFACE, frame(0x1, 0x4, 1, Buffer.from([0xff, 0xff, 0xff, 0x7f]))]));
    await sendRaw(Buffer.concat([PREFACE, frame(0x9, 0x4, 7, Buffer.from([0x82]))]));
    await Promise.all(Array.from({ length: 200 }, () => new Promise<void>((resolve) => {
      const s = connectNet(paths.socket, () => s.destroy());
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    })));
    assert.equal(daemon.exitCode, null, 'the daemon is up');
    const client = new CriClient(paths.socket, paths.socket);
    assert.equal((await client.call<{ runtimeName: string }>('Version')).runtimeName, 'podchart');
    client.close();
    if (CRICTL) assert.match((await crictl('version')).stdout, /podchart/);
  });
});
