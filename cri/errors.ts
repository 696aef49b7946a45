/** The one place a domain error becomes a gRPC status (containerd's errgrpc.ToGRPC). */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { Code, PodchartError } from '../errors/catalogue.js';

/**
 * Longest status message sent. A gRPC status travels in HTTP/2 trailers: one of about 64 KiB and
 * more cannot be sent, and the connection, with every other call on it (kubelet has one), hangs.
 * Messages that quote input are cut where they quote it (cri/validate.ts quote); this is the net.
 */
export const MAX_STATUS_MESSAGE_BYTES = 4096;

/**
 * A disk out of space or quota, wherever it was met (an effect's write, a pull's), is no internal
 * error: it is RESOURCE_EXHAUSTED, with what to do about it (issue 12, item 1).
 */
const OUT_OF_SPACE = /\bENOSPC\b|no space left on device|\bEDQUOT\b|disk quota exceeded/i;
const FREE_SPACE_HINT = ' (the node is out of disk space: free some under the daemon\'s rootDir, runDir or the pod log directory, and retry)';

export function toGrpcError(err: unknown): Partial<ServiceError> {
  const message = err instanceof Error ? err.message : String(err);
  const internal = !(err instanceof PodchartError) || err.code === Code.INTERNAL;
  if (internal && OUT_OF_SPACE.test(message)) {
    return { code: status.RESOURCE_EXHAUSTED, details: bounded(message) + FREE_SPACE_HINT, metadata: new Metadata() };
  }
  if (err instanceof PodchartError) {
    return { code: err.code, details: bounded(err.message), metadata: new Metadata() };
  }
  return { code: status.INTERNAL, details: bounded(`internal error: ${message}`), metadata: new Metadata() };
}

function bounded(message: string): string {
  const bytes = Buffer.from(message);
  if (bytes.length <= MAX_STATUS_MESSAGE_BYTES) return message;
  const head = bytes.subarray(0, MAX_STATUS_MESSAGE_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${head}… (message cut: ${bytes.length} bytes)`;
}
