/**
 * The error catalogue: every failure a CRI caller can see, each carrying its gRPC status code
 * (the numbers of grpc.status, so lower layers need not import grpc). Thrown anywhere below cri/,
 * translated once by cri/errors.ts.
 */
export const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
} as const;
export type CodeNumber = (typeof Code)[keyof typeof Code];

export class PodchartError extends Error {
  readonly code: CodeNumber;
  constructor(code: CodeNumber, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InvalidArgument extends PodchartError {
  constructor(message: string) {
    super(Code.INVALID_ARGUMENT, message);
  }
}

export class NotFound extends PodchartError {
  constructor(message: string) {
    super(Code.NOT_FOUND, message);
  }
}

export class AlreadyExists extends PodchartError {
  constructor(message: string) {
    super(Code.ALREADY_EXISTS, message);
  }
}

/** The chart refused the event in its current state (a real conflict, not an idempotent repeat). */
export class Refused extends PodchartError {
  constructor(message: string) {
    super(Code.FAILED_PRECONDITION, message);
  }
}

/** The daemon is restoring its actors, or shutting down. */
export class Unavailable extends PodchartError {
  constructor(message: string) {
    super(Code.UNAVAILABLE, message);
  }
}

/** Content that is not what its digest says (a registry serving corrupt or altered bytes). */
export class DataLoss extends PodchartError {
  constructor(message: string) {
    super(Code.DATA_LOSS, message);
  }
}

export class DeadlineExceeded extends PodchartError {
  constructor(message: string) {
    super(Code.DEADLINE_EXCEEDED, message);
  }
}

/** An external program (runc, conmon, ip, a CNI plugin) failed: carries the command and stderr tail. */
export class EffectFailed extends PodchartError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(Code.INTERNAL, message, options);
  }
}

export class NotImplemented extends PodchartError {
  constructor(method: string) {
    super(Code.UNIMPLEMENTED, `not implemented yet: ${method}`);
  }
}

/** Something this node cannot do, with why: UNIMPLEMENTED ("not supported or enabled"), as gRPC defines it. */
export class Unsupported extends PodchartError {
  constructor(message: string) {
    super(Code.UNIMPLEMENTED, message);
  }
}

/** A registry refused our credentials (or wants some we do not have). */
export class PermissionDenied extends PodchartError {
  constructor(message: string) {
    super(Code.PERMISSION_DENIED, message);
  }
}

/** A bound was reached (too many streaming requests in flight, a pull beyond its caps). */
export class ResourceExhausted extends PodchartError {
  constructor(message: string) {
    super(Code.RESOURCE_EXHAUSTED, message);
  }
}
