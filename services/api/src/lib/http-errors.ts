/**
 * The API's error vocabulary at the HTTP level: the codes only HTTP has (a body that is not JSON, a
 * missing bearer token, an unknown route, ...), the one HTTP status of every domain and HTTP code, and
 * the status of each confirm refusal. Domain code (@dropgate/domain) never names a status.
 */
import type { ErrorCode, RefusalCode } from '@dropgate/domain';

export const HttpErrorCodes = [
  'INVALID_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'NOT_FOUND',
  'WEBHOOK_FORBIDDEN',
  'INTERNAL',
] as const;
export type HttpErrorCode = (typeof HttpErrorCodes)[number];

/** An error only HTTP has (authentication, routing, the body's encoding). */
export class HttpError extends Error {
  readonly code: HttpErrorCode;
  constructor(code: HttpErrorCode, message: string) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
  }
}

/** The status of every code the API answers with. */
export const ERROR_STATUS: Readonly<Record<ErrorCode | HttpErrorCode, number>> = Object.freeze({
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  EVENT_NOT_FOUND: 404,
  EVENT_EXISTS: 409,
  SEAT_NOT_FOUND: 404,
  POOL_NOT_FOUND: 404,
  ORDER_NOT_FOUND: 404,
  DUPLICATE_SEAT: 400,
  NO_INVENTORY: 400,
  SALE_NOT_OPEN: 403,
  SALE_CLOSED: 403,
  BUYER_LIMIT: 403,
  WEBHOOK_FORBIDDEN: 403,
  OVERLOADED: 503,
  NOT_READY: 503,
  SOLD_OUT: 409,
  ADMISSION_REQUIRED: 403,
  ADMISSION_INVALID: 403,
  NOT_EXTENDABLE: 409,
  NO_WAITING_ROOM: 404,
  TOKEN_INVALID: 404,
  WAITLIST_FULL: 409,
  RATE_LIMITED: 429,
  BUYER_UNVERIFIED: 403,
  ORDER_LIMIT: 429,
  INTERNAL: 500,
});

/**
 * HTTP status for each refusal. PortOne treats every non-200 the same (the payment stops); the status
 * still tells operators and load balancers what kind of refusal it was.
 */
export const REFUSAL_STATUS: Readonly<Record<RefusalCode, number>> = Object.freeze({
  SOLD_OUT: 409,
  AMOUNT_MISMATCH: 409,
  ORDER_NOT_FOUND: 404,
  SALE_NOT_OPEN: 403,
  SALE_CLOSED: 403,
  BUYER_LIMIT: 403,
  ALREADY_PAID: 409,
  NOT_READY: 503,
  OVERLOADED: 503,
  DEADLINE: 503,
  TOO_MANY_ATTEMPTS: 429,
  ORDER_CLOSED: 409,
  PAYMENT_UNCHECKED: 409,
  FORBIDDEN: 403,
  BAD_REQUEST: 400,
});
