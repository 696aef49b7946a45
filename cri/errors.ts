/** The one place a domain error becomes a gRPC status (containerd's errgrpc.ToGRPC). */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { PodchartError } from '../errors/catalogue.js';

/**
 * Longest status message sent. A gRPC status travels in HTTP/2 trailers: one of about 64 KiB and
 * more cannot be sent, and the connection, with every other call on it (kubelet has one), hangs.
 * Messages that quote input are cut where they quote it (cri/validate.ts quote); this is the net.
 */
export const MAX_STATUS_MESSAGE_BYTES = 4096;

export function toGrpcError(err: unknown): Partial<ServiceError> {
  if (err instanceof PodchartError) {
    return { code: err.code, details: bounded(err.message), metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: bounded(`internal error: ${message}`), metadata: new Metadata() };
}

function bounded(message: string): string {
  const bytes = Buffer.from(message);
  if (bytes.length <= MAX_STATUS_MESSAGE_BYTES) return message;
  const head = bytes.subarray(0, MAX_STATUS_MESSAGE_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${head}… (message cut: ${bytes.length} bytes)`;
}
