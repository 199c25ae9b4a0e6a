/**
 * Domain errors: a stable `code`, a message for the caller, and no HTTP status. The API maps codes to
 * statuses in one place (services/api/src/plugins/errors.plugin.ts); workers map them to retry or not.
 */
export const ErrorCodes = [
  'VALIDATION_FAILED',
  'EVENT_NOT_FOUND',
  'EVENT_EXISTS',
  'SEAT_NOT_FOUND',
  'POOL_NOT_FOUND',
  'ORDER_NOT_FOUND',
  'DUPLICATE_SEAT',
  'NO_INVENTORY',
  'SALE_NOT_OPEN',
  'SALE_CLOSED',
  'BUYER_LIMIT',
  /** Redis or Postgres cannot answer, or the event's state is being rebuilt: worth retrying shortly. */
  'NOT_READY',
  'OVERLOADED',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

/** The one error type domain code throws. `details` is safe to show to the caller. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'DomainError';
    this.code = code;
    this.details = details;
  }
}
