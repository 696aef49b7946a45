/**
 * Attach to a container's main process through conmon (CRI Attach): conmon keeps the container's
 * stdio and serves it on `<bundle>/attach`, a SOCK_SEQPACKET unix socket. Every packet conmon sends
 * is one byte naming the pipe (2 stdout, 3 stderr) followed by that pipe's data; what we send is
 * the container's stdin, as is. Resizes go through conmon's control fifo (`<bundle>/ctl`).
 *
 * Node's net module speaks only SOCK_STREAM, whose byte stream would lose conmon's packet
 * boundaries (and with them the pipe bytes): node-unix-socket gives us SOCK_SEQPACKET.
 *
 * When the session ends follows CRI-O (the reference for conmon attach): the container's output
 * ending ends it; the client closing stdin ends it too for a container whose stdin stays open
 * (stdin_once false) without a tty, and otherwise the output's end is awaited (conmon closes the
 * container's stdin on our half-close, so a `sh` reading it exits).
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import type { SeqpacketSocket } from 'node-unix-socket';
import { sendControl } from './log-reopen.js';

const PIPE_STDOUT = 2;
const PIPE_STDERR = 3;
/** conmon reads its attach socket with a buffer of this size: larger packets would be cut. */
const STDIN_PACKET_BYTES = 8192;
/** conmon's control message "<type> <height> <width>\n"; type 1 resizes the terminal. */
const RESIZE = 1;

export interface AttachTarget {
  bundle: string;
  tty: boolean;
  stdinOnce: boolean;
}

export interface Attached {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  resize(size: { width: number; height: number }): Promise<void>;
  /** Resolves when the session is over (see the header); null: attach reports no exit code. */
  done: Promise<null>;
  /** The client went away: leave the container alone, drop the connection. */
  abort(): Promise<void>;
}

/** Connects to conmon's attach socket of the container whose bundle is `target.bundle`. */
export async function attachContainer(target: AttachTarget, want: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<Attached> {
  const socket = await connect(target.bundle);
  const stdout = want.stdout ? new PassThrough() : null;
  const stderr = want.stderr && !target.tty ? new PassThrough() : null;
  let finish: () => void = () => undefined;
  const done = new Promise<null>((resolve) => {
    finish = () => {
      stdout?.end();
      stderr?.end();
      // The session is over, so is our connection: node-unix-socket closes it by itself only once
      // both halves have ended, and conmon keeps its half open (stdin_once false) or is gone.
      socket.destroy();
      resolve(null);
    };
  });
  socket.on('data', (packet: Buffer) => {
    const pipe = packet[0] === PIPE_STDERR ? stderr : packet[0] === PIPE_STDOUT ? stdout : null;
    if (pipe && packet.length > 1 && !pipe.writableEnded) pipe.write(packet.subarray(1));
  });
  socket.on('error', () => finish()); // the container or conmon went away: the output ends here
  socket.on('end', () => finish());
  socket.on('close', () => finish());
  const stdin = want.stdin
    ? new Writable({
        write(chunk: Buffer, _enc, callback) {
          writeChunks(socket, chunk).then(() => callback(), callback);
        },
        final(callback) {
          socket.end(() => {
            callback();
            if (!target.stdinOnce && !target.tty) finish();
          });
        },
      })
    : null;
  return {
    stdin,
    stdout,
    stderr,
    resize: (size) => sendControl(join(target.bundle, 'ctl'), `${RESIZE} ${size.height} ${size.width}\n`),
    done,
    abort: async () => {
      socket.destroy();
      finish();
    },
  };
}

/**
 * The socket's path is often longer than sun_path's 108 bytes (a 64-hex id twice under rootDir),
 * so it is reached, as conmon binds it, through our own fd of its directory in /proc/self/fd.
 */
async function connect(bundle: string): Promise<SeqpacketSocket> {
  // Loaded on the first attach, not at start (issue 14: idle memory).
  const { SeqpacketSocket } = await import('node-unix-socket');
  const dirFd = openSync(bundle, 'r');
  return new Promise<SeqpacketSocket>((resolve, reject) => {
    const socket = new SeqpacketSocket();
    const failed = (err: Error): void => {
      closeSync(dirFd);
      reject(new Error(`cannot attach: conmon's attach socket in ${bundle} does not answer (${err.message})`));
    };
    socket.once('error', failed);
    try {
      socket.connect(`/proc/self/fd/${dirFd}/attach`, () => {
        closeSync(dirFd);
        socket.off('error', failed);
        resolve(socket);
      });
    } catch (err) {
      failed(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

function writeChunks(socket: SeqpacketSocket, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    let left = chunk.length;
    if (left === 0) return resolve();
    for (let at = 0; at < chunk.length; at += STDIN_PACKET_BYTES) {
      const len = Math.min(STDIN_PACKET_BYTES, chunk.length - at);
      socket.write(chunk, at, len, () => {
        left -= len;
        if (left === 0) resolve();
      });
    }
  });
}
