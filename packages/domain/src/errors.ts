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
  /** hold_at "order": nothing left to reserve for this order (told at selection, before any card). */
  'SOLD_OUT',
  /** The event has a waiting room and the order carries no admission token. */
  'ADMISSION_REQUIRED',
  /** The admission token is forged, expired, or another buyer's or event's. */
  'ADMISSION_INVALID',
  /** The order has no live reservation to extend, or it was extended as often as allowed. */
  'NOT_EXTENDABLE',
  /** The event has no waiting room (or no waiting list). */
  'NO_WAITING_ROOM',
  /** A queue or waiting-list token that is not this event's. */
  'TOKEN_INVALID',
  /** The event's waiting list keeps as many entries as it may (WAITLIST_MAX_ENTRIES). */
  'WAITLIST_FULL',
  /** Polled faster than allowed. */
  'RATE_LIMITED',
  /** BUYER_TOKEN_SECRET is set and the request carries no buyer token that vouches for its buyer_id. */
  'BUYER_UNVERIFIED',
  /** The buyer made as many orders for the event as one buyer may (ORDERS_PER_BUYER_MAX). */
  'ORDER_LIMIT',
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
