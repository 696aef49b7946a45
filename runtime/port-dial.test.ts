/**
 * dialPodPort against real listeners: node servers started inside a real network namespace (made
 * as podchart makes a pod's) and on this host's loopback. Checks bytes both ways, a half-close
 * carried through socat, the IPv6 fallback, refused connects with socat's reason, and that no
 * nsenter/socat child is left once a stream has closed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createNetns, NETNS_DIR, removeNetns } from '../network/netns.js';
import { untilEvent } from '../test/until-event.js';
import { dialPodPort } from './port-dial.js';

const netns = `${NETNS_DIR}/pcdial-${randomBytes(3).toString('hex')}`;
let listener: ChildProcess | null = null;
let ports = { v4: 0, v6: 0 };

// Inside the netns: an echo server on 127.0.0.1 that says "bye" after the client's FIN (so a
// half-close must be carried), and one on [::1] only.
const SERVERS = `
const net = require('node:net');
const echo = (s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end('bye')); };
const v4 = net.createServer({ allowHalfOpen: true }, echo).listen(0, '127.0.0.1', () => {
  const v6 = net.createServer({ allowHalfOpen: true }, echo).listen({ port: 0, host: '::1', ipv6Only: true }, () => {
    console.log(JSON.stringify({ v4: v4.address().port, v6: v6.address().port }));
  });
});`;

/** Live children of this process that are nsenter or socat. */
function dialChildren(): string[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(ppid) === process.pid && state !== 'Z' && (comm === 'socat' || comm === 'nsenter') ? [`${pid} ${comm}`] : [];
    } catch {
      return []; // exited between readdir and read
    }
  });
}

/** Writes `send`, ends, and reads the stream to its close. */
function exchange(stream: Duplex, send: string): Promise<string> {
  return untilEvent('the stream to close', 10_000, (done, fail) => {
    let got = '';
    stream.on('data', (d: Buffer) => (got += d.toString()));
    stream.once('error', fail);
    stream.once('close', () => done(got));
    stream.end(send);
    return () => stream.destroy();
  });
}

function closed(stream: Duplex): Promise<void> {
  return untilEvent('the stream to close', 10_000, (done) => {
    stream.once('close', () => done());
    return () => undefined;
  });
}

describe('dialPodPort in a network namespace (nsenter + socat)', () => {
  before(async () => {
    await createNetns(netns);
    const child = spawn('nsenter', [`--net=${netns}`, process.execPath, '-e', SERVERS], { stdio: ['ignore', 'pipe', 'inherit'] });
    listener = child;
    ports = await untilEvent('the listeners in the netns', 10_000, (done, fail) => {
      child.stdout.once('data', (d: Buffer) => done(JSON.parse(d.toString()) as typeof ports));
      child.once('exit', (code) => fail(new Error(`the listeners exited with ${code}`)));
      return () => undefined;
    });
  });
  after(async () => {
    listener?.kill('SIGKILL');
    await removeNetns(netns);
  });

  test('bytes both ways; the client FIN half-closes; socat is gone once the stream closes', async () => {
    const stream = await dialPodPort(netns, ports.v4);
    assert.equal(await exchange(stream, 'ping'), 'pingbye');
    assert.deepEqual(dialChildren(), []);
  });

  test('a port only on [::1] is reached through the IPv6 fallback', async () => {
    const stream = await dialPodPort(netns, ports.v6);
    assert.equal(await exchange(stream, 'six'), 'sixbye');
  });

  test('a closed port: rejected with socat\'s reason for each family, nothing left', async () => {
    // Nothing in the fresh namespace listens on port 1.
    await assert.rejects(dialPodPort(netns, 1), /^Error: IPv4: connect\(.*127\.0\.0\.1:\d+.*\): Connection refused; IPv6: connect\(.*\): Connection refused$/);
    assert.deepEqual(dialChildren(), []);
  });

  test('destroy mid-connection kills socat before the stream reports close', async () => {
    const stream = await dialPodPort(netns, ports.v4);
    assert.equal(dialChildren().length, 1);
    stream.write('x');
    stream.destroy();
    await closed(stream);
    assert.deepEqual(dialChildren(), []);
  });

  test('a namespace that is not there: nsenter\'s reason', async () => {
    await assert.rejects(dialPodPort(`${NETNS_DIR}/pcdial-missing`, 80), /nsenter: .*No such file or directory/);
  });
});

describe('dialPodPort on the host (no netns)', () => {
  let server: Server;
  before(async () => {
    server = createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end('bye'));
    }).listen(0, '127.0.0.1');
    await untilEvent('the host listener', 5000, (done) => (server.once('listening', () => done(undefined)), () => undefined));
  });
  after(() => server.close());

  test('net.connect, half-close carried', async () => {
    const stream = await dialPodPort(null, (server.address() as AddressInfo).port);
    assert.equal(await exchange(stream, 'host'), 'hostbye');
  });

  test('a closed port is refused', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await untilEvent('a port', 5000, (done) => (probe.once('listening', () => done(undefined)), () => undefined));
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    await assert.rejects(dialPodPort(null, port), /IPv4: connect ECONNREFUSED 127\.0\.0\.1:\d+; IPv6: connect ECONNREFUSED ::1:\d+/);
  });
});
