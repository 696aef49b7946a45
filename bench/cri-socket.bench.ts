/**
 * What accepting any :authority costs (cri/socket.ts, cri/h2-authority.ts). Prints:
 *  1. the rewriter alone: microseconds per request header block (grpc-go's headers, HPACK-indexed);
 *  2. a Version call through grpc-js, sequential and 50 in flight, on a socket grpc-js binds itself
 *     (nghttp2 reads the client directly) and on podchart's socket (through the rewriter), and the
 *     difference per call.
 * Run: npm run bench:socket   (numbers only; no test depends on them)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import hpack from 'hpack.js';
import { pino } from 'pino';
import { AuthorityRewriter, PREFACE } from '../cri/h2-authority.js';
import { listenUnix } from '../cri/socket.js';
import { loadCri } from '../proto/load.js';

const BLOCKS = 100_000;
const CALLS = 5_000;

function rewriterAlone(): number {
  const encoder = hpack.compressor.create({ table: { maxSize: 4096 } });
  const frames: Buffer[] = [PREFACE];
  for (let i = 0; i < BLOCKS; i++) {
    encoder.write([[':method', 'POST'], [':scheme', 'http'], [':path', '/runtime.v1.RuntimeService/ListContainers'],
      [':authority', '/run/podchart/podchart.sock'], ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.51.0'],
      ['te', 'trailers'], ['grpc-timeout', `${1_000_000 + (i % 1000)}u`]].map(([name = '', value = '']) => ({ name, value })));
    const block = encoder.read() ?? Buffer.alloc(0);
    const header = Buffer.alloc(9);
    header.writeUIntBE(block.length, 0, 3);
    header[3] = 0x1;
    header[4] = 0x4;
    header.writeUInt32BE(2 * i + 1, 5);
    frames.push(header, block);
  }
  const rewriter = new AuthorityRewriter();
  const started = process.hrtime.bigint();
  for (const f of frames) rewriter.push(f);
  const ns = Number(process.hrtime.bigint() - started);
  if (rewriter.rewritten !== BLOCKS) throw new Error(`rewrote ${rewriter.rewritten} of ${BLOCKS}`);
  return ns / BLOCKS / 1000;
}

async function callsPerSecond(socket: string, authority: string, inFlight: number): Promise<number> {
  const cri = loadCri();
  const client = new cri.RuntimeServiceClient(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    (client as unknown as { Version(r: object, cb: (e: Error | null) => void): void }).Version({}, (e) => (e ? reject(e) : resolve()));
  });
  for (let i = 0; i < 200; i++) await one(); // warm up
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next++ < CALLS) await one();
  }));
  const ms = performance.now() - started;
  client.close();
  return (ms * 1000) / CALLS;
}

function versionServer(): grpc.Server {
  const server = new grpc.Server();
  server.addService(loadCri().runtimeService, {
    Version: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { version: '0.1.0', runtimeName: 'podchart', runtimeVersion: '0.1.0', runtimeApiVersion: 'v1' }),
  });
  return server;
}

async function main(): Promise<void> {
  console.log(`rewriter alone: ${rewriterAlone().toFixed(2)} µs per request header block (${BLOCKS} blocks)`);
  const dir = mkdtempSync(join(tmpdir(), 'pc-bench-'));
  const direct = versionServer();
  await new Promise<void>((resolve, reject) => direct.bindAsync(`unix://${join(dir, 'direct.sock')}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  const rewritten = versionServer();
  const socket = await listenUnix(rewritten, join(dir, 'podchart.sock'), pino({ level: 'silent' }));
  for (const inFlight of [1, 50]) {
    const a = await callsPerSecond(join(dir, 'direct.sock'), 'localhost', inFlight);
    const b = await callsPerSecond(join(dir, 'podchart.sock'), 'localhost', inFlight);
    const c = await callsPerSecond(join(dir, 'podchart.sock'), join(dir, 'podchart.sock'), inFlight);
    console.log(`Version, ${inFlight} in flight, ${CALLS} calls: grpc-js socket ${a.toFixed(1)} µs/call; podchart socket ${b.toFixed(1)} µs/call ` +
      `(socket-path authority: ${c.toFixed(1)}); cost ${(b - a).toFixed(1)} µs/call`);
  }
  direct.forceShutdown();
  await socket.close();
  rewritten.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
}

await main();
