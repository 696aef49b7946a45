/** The one place a domain error becomes a gRPC status (containerd's errgrpc.ToGRPC). */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { PodchartError } from '../errors/catalogue.js';

export function toGrpcError(err: unknown): Partial<ServiceError> {
  if (err instanceof PodchartError) {
    return { code: err.code, details: err.message, metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}
