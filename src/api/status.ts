/**
 * The HTTP status of an API error (also the Nats-Service-Error-Code of the
 * same error over NATS), and its JSON body `{error: {code, message, field?}}`.
 */
import { ErrorCodes, SandbarError, type ErrorCode } from '../errors.js';

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  SANDBAR_ERR_BAD_PAYLOAD: 400,
  SANDBAR_ERR_INVALID_ID: 400,
  SANDBAR_ERR_TOO_LARGE: 413,
  SANDBAR_ERR_INBOX_FULL: 429,
  SANDBAR_ERR_UNAVAILABLE: 503,
};

export function statusOf(code: string): number {
  return ErrorCodes[code as ErrorCode]?.httpStatus ?? BY_CODE[code as ErrorCode] ?? 500;
}

export interface ApiErrorBody { error: { code: string; message: string; field?: string } }

export function errorBody(err: unknown): ApiErrorBody {
  if (!(err instanceof SandbarError)) return { error: { code: 'SANDBAR_ERR_INTERNAL', message: 'internal error' } };
  const field = (err as { field?: unknown }).field;
  return { error: typeof field === 'string' && field !== '' ? { code: err.code, message: err.message, field } : { code: err.code, message: err.message } };
}
