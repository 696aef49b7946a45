/**
 * Huge input gets a short, clear refusal (issue 12, item 10). A gRPC status rides in HTTP/2
 * trailers: echoing a 1 MiB id or image reference into it used to hang the connection, and with
 * it every other call on it (kubelet has one). Each refusal is INVALID_ARGUMENT, its message
 * stays small, and a call on the same connection right after is answered.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Daemon, tempPaths } from './daemon.js';
import { hugeIdCases } from './hostile-cases.js';

const daemon = new Daemon(tempPaths('pc-bound-'), [], {}, 'none');

before(async () => {
  await daemon.start();
});
after(async () => {
  await daemon.dispose();
});

/** The call's error code and message length; throws if it succeeded. */
async function refusal(method: string, req: Record<string, unknown>, image = false): Promise<{ code: number; bytes: number; message: string }> {
  try {
    await (image ? daemon.cri.callImage(method, req, 10_000) : daemon.cri.call(method, req, 10_000));
  } catch (err) {
    const e = err as { code: number; details: string };
    return { code: e.code, bytes: Buffer.byteLength(e.details), message: e.details };
  }
  throw new Error(`${method} accepted a 1 MiB field`);
}

test('1 MiB ids and image references: INVALID_ARGUMENT with a short message; the connection keeps serving', async () => {
  for (const [method, req, image] of hugeIdCases) {
    const r = await refusal(method, req, image);
    assert.equal(r.code, grpcStatus.INVALID_ARGUMENT, `${method}: ${r.message.slice(0, 200)}`);
    assert.ok(r.bytes < 1024, `${method}: a ${r.bytes}-byte message`);
    assert.match(r.message, /at most/, method);
    const { runtimeName } = await daemon.cri.call<{ runtimeName: string }>('Version', {}, 5_000);
    assert.equal(runtimeName, 'podchart', `the call after ${method}`);
  }
});
