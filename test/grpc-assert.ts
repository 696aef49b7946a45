/** Asserts a CRI call fails with a gRPC code and a message matching `pattern`. */
import assert from 'node:assert/strict';
import type { status as grpcStatus, ServiceError } from '@grpc/grpc-js';

export async function rejects(p: Promise<unknown>, code: grpcStatus, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: ServiceError) => {
    assert.equal(err.code, code, `code ${err.code} (${err.details})`);
    assert.match(err.details, pattern);
    return true;
  });
}
