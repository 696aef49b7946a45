import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { toGrpcError, MAX_STATUS_MESSAGE_BYTES } from './errors.js';
import { EffectFailed, InvalidArgument } from '../errors/catalogue.js';

test('a full disk met by an effect or a raw write is RESOURCE_EXHAUSTED, with what to do', () => {
  const fromEffect = toGrpcError(new EffectFailed('pod sandbox web could not be started: ENOSPC: no space left on device, write'));
  assert.equal(fromEffect.code, status.RESOURCE_EXHAUSTED);
  assert.match(fromEffect.details ?? '', /ENOSPC.*the node is out of disk space: free some/);
  const raw = Object.assign(new Error("ENOSPC: no space left on device, open '/var/lib/podchart/x'"), { code: 'ENOSPC' });
  assert.equal(toGrpcError(raw).code, status.RESOURCE_EXHAUSTED);
  assert.equal(toGrpcError(new Error('EDQUOT: disk quota exceeded')).code, status.RESOURCE_EXHAUSTED);
});

test('other errors keep their code; unknown ones are INTERNAL; messages are bounded', () => {
  assert.equal(toGrpcError(new InvalidArgument('no space left on device is a fine pod name?')).code, status.INVALID_ARGUMENT);
  assert.equal(toGrpcError(new Error('boom')).code, status.INTERNAL);
  assert.equal(toGrpcError(new EffectFailed('runc: exit status 1')).code, status.INTERNAL);
  const long = toGrpcError(new EffectFailed('x'.repeat(100_000)));
  assert.ok(Buffer.byteLength(long.details ?? '') < MAX_STATUS_MESSAGE_BYTES + 100);
});
