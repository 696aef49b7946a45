/**
 * A TCP connection to a port on a pod's loopback, for PortForward (issue 10), as kubelet's runtimes
 * dial it: 127.0.0.1 first, then [::1] (containerd's dialLocalhost order), inside the pod's network
 * namespace.
 *
 * Node cannot setns(2), so, as dockershim did, a child connects for us: `nsenter --net=<netns> socat
 * STDIO TCP4:127.0.0.1:<port>`, whose stdin and stdout are the connection (nsenter execs socat: the
 * child is socat itself). Assumptions the rest relies on:
 * - `-d -d` makes socat print "starting data transfer loop" once connected: that, not the spawn,
 *   resolves the dial, and an exit before it is a failed connect (its stderr says why).
 * - `STDIO,shut-close`: when the pod's side ends, socat closes its stdout, so the end reaches us
 *   (plain STDIO keeps stdout open until stdin ends too). Our end() of stdin half-closes the TCP
 *   connection and socat keeps copying the other way for up to HALF_CLOSE_S.
 * - Destroying the returned stream kills socat unless both directions ended cleanly (then it exits
 *   by itself), and its 'close' waits for the exit: no child outlives the stream.
 * Host-network pods (no netns) are dialled with net.connect, half-open allowed likewise.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawnTurn } from '../host/spawn-turn.js';
import { connect } from 'node:net';
import { Duplex } from 'node:stream';

/** One connect attempt's bound (containerd's dialTimeout): a dropped SYN must not hang a forward. */
const CONNECT_TIMEOUT_S = 5;
/** How long socat keeps copying one way after the other has ended (kubelet's stream idle timeout, 4 h). */
const HALF_CLOSE_S = 4 * 3600;
const READY = 'starting data transfer loop';
const STDERR_TAIL = 4096;
const LOOPBACKS = [
  { family: 'IPv4', socat: 'TCP4:127.0.0.1', host: '127.0.0.1' },
  { family: 'IPv6', socat: 'TCP6:[::1]', host: '::1' },
] as const;

/** A connection to `port` on the pod's loopback (the node's when `netnsPath` is null). */
export async function dialPodPort(netnsPath: string | null, port: number): Promise<Duplex> {
  const failures: string[] = [];
  for (const loopback of LOOPBACKS) {
    try {
      return netnsPath === null ? await connectHost(loopback.host, port) : await connectInNetns(netnsPath, `${loopback.socat}:${port}`);
    } catch (err) {
      failures.push(`${loopback.family}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(failures.join('; '));
}

function connectHost(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, timeout: CONNECT_TIMEOUT_S * 1000 });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    const onTimeout = (): void => fail(new Error(`connect ${host}:${port}: timed out after ${CONNECT_TIMEOUT_S} s`));
    socket.once('error', fail);
    socket.once('timeout', onTimeout);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      socket.off('timeout', onTimeout);
      resolve(socket);
    });
  });
}

async function connectInNetns(netnsPath: string, address: string): Promise<Duplex> {
  await spawnTurn();
  const child = spawn('nsenter', [`--net=${netnsPath}`, 'socat', '-d', '-d', '-t', String(HALF_CLOSE_S), 'STDIO,shut-close', `${address},connect-timeout=${CONNECT_TIMEOUT_S}`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  return new Promise((resolve, reject) => {
    let stderr = '';
    const detach = (): void => {
      child.stderr.off('data', onStderr);
      child.off('exit', onExit);
      child.off('error', onError);
      child.stderr.resume(); // socat's closing notices still come: drain them
    };
    const onStderr = (chunk: Buffer): void => {
      stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL);
      if (!stderr.includes(READY)) return;
      detach();
      resolve(childStream(child, exited));
    };
    const onExit = (code: number | null, signal: string | null): void => {
      detach();
      reject(new Error(socatErrors(stderr) || `socat exited with ${code ?? signal} before connecting`));
    };
    const onError = (err: Error): void => {
      detach();
      reject(new Error(`cannot run nsenter (socat must be installed): ${err.message}`));
    };
    child.stderr.on('data', onStderr);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** The error lines of socat's (or nsenter's) stderr, without socat's timestamp prefix. */
function socatErrors(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '' && !/ socat\[\d+\] [DIN] /.test(line))
    .map((line) => line.replace(/^.* socat\[\d+\] [EWF] /, ''))
    .join('; ');
}

function childStream(child: ChildProcessWithoutNullStreams, exited: Promise<void>): Duplex {
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  const destroyPipes = stream._destroy.bind(stream);
  stream._destroy = (err, callback) => {
    const clean = !err && stream.readableEnded && stream.writableFinished;
    // Duplex.from turns a plain destroy() mid-transfer into an AbortError; ours stays plain.
    destroyPipes(err, () => {
      if (!clean) child.kill('SIGKILL');
      void exited.then(() => callback(err));
    });
  };
  return stream;
}
