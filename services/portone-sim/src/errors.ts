/**
 * Errors of the simulator's own control API (`/sim/*` and the library methods). PortOne REST routes
 * never throw these: they answer PortOne's envelope. The HTTP mapping lives in one place, `app.ts`.
 */

/** Stable codes of {@link SimError}. */
export type SimErrorCode = 'INVALID_REQUEST' | 'PAYMENT_NOT_FOUND' | 'PAYMENT_NOT_PAID' | 'NO_NOTICE_URL' | 'ALREADY_PAID';

/** A refused simulator control request. */
export class SimError extends Error {
  readonly code: SimErrorCode;

  constructor(code: SimErrorCode, message: string) {
    super(message);
    this.name = 'SimError';
    this.code = code;
  }
}
