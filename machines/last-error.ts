/**
 * An effect's failure as a chart keeps it: its words and the gRPC status code its error carried
 * (issue 13, item 2). An effect that refuses bad input throws INVALID_ARGUMENT, a CNI plugin that
 * cannot be reached UNAVAILABLE; the chart keeps the code, so the CRI reply can give it back
 * instead of INTERNAL. Codes are grpc.status numbers (errors/catalogue.ts), held as plain data.
 */
import { Code } from '../errors/catalogue.js';

export interface LastError {
  code: number;
  message: string;
}

/** For a failure that carries no code of its own. */
export const INTERNAL_CODE = Code.INTERNAL;
/** For a wait the chart gave up on. */
export const DEADLINE_EXCEEDED_CODE = Code.DEADLINE_EXCEEDED;

/** The LastError of what an effect threw: its `code` when it has a valid one, INTERNAL otherwise. */
export function lastErrorOf(error: unknown): LastError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  return { code: typeof code === 'number' && Number.isInteger(code) && code > 0 && code <= 16 ? code : INTERNAL_CODE, message };
}
