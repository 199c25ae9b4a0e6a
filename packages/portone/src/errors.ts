/**
 * Errors raised by the PortOne V1 client.
 *
 * Callers branch on `transient`: a transient error (PortOne unreachable, slow or answering 5xx) is
 * worth retrying later with backoff; a permanent one (PortOne said no, or refused our credentials)
 * will fail the same way again and must not be retried blindly. `code` is stable and meant for logs,
 * metrics and error mapping; `message` is for humans (PortOne's own Korean message when it sent one).
 */

/** The endpoints the client calls, as reported to metrics and carried by errors. */
export type PortOneEndpoint =
  | 'getToken' | 'getPayment' | 'getPayments' | 'findPayment' | 'findAllPayments' | 'listPaidPayments' | 'listCancelledPayments' | 'cancelPayment' | 'preparePayment'
  | 'v2GetPayment' | 'v2ListPaidPayments' | 'v2CancelPayment' | 'v2PreRegister' | 'v2ConfirmPayment';

/** Base class of every error the client throws. */
export class PortOneError extends Error {
  /** Stable machine-readable code, e.g. `PORTONE_API_ERROR`. */
  readonly code: string;
  /** True when retrying later may succeed (PortOne unavailable), false when it will not. */
  readonly transient: boolean;
  /** The endpoint whose call failed. */
  readonly endpoint: PortOneEndpoint;

  constructor(code: string, message: string, transient: boolean, endpoint: PortOneEndpoint, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.transient = transient;
    this.endpoint = endpoint;
  }
}

/**
 * PortOne answered with an error: an envelope whose `code` is not 0 (a business refusal such as a
 * checksum mismatch on cancel), or a 4xx other than 401/404. Permanent: never retried.
 */
export class PortOneApiError extends PortOneError {
  /** The envelope's `code` (PortOne uses 1 and -1), or null when the answer carried no envelope. */
  readonly envelopeCode: number | null;
  /** PortOne's own message (usually Korean), or null when it sent none. */
  readonly portoneMessage: string | null;
  /** HTTP status of the answer (PortOne sends most business errors with 200). */
  readonly httpStatus: number;
  /** V2's error `type` (e.g. `CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN`); null for V1. */
  readonly errorType: string | null;

  constructor(endpoint: PortOneEndpoint, httpStatus: number, envelopeCode: number | null, portoneMessage: string | null, errorType: string | null = null) {
    super(
      'PORTONE_API_ERROR',
      portoneMessage ?? `PortOne ${endpoint} failed with HTTP ${httpStatus}`,
      false,
      endpoint,
    );
    this.envelopeCode = envelopeCode;
    this.portoneMessage = portoneMessage;
    this.httpStatus = httpStatus;
    this.errorType = errorType;
  }
}

/** How the last attempt of an unavailable call ended. */
export type UnavailableReason = 'timeout' | 'network_error' | 'http_error';

/**
 * PortOne could not be reached, timed out, or kept answering 5xx until the retries ran out.
 * Transient: the caller should retry later (outcome jobs back off); nothing may be decided on a guess.
 */
export class PortOneUnavailableError extends PortOneError {
  /** How many HTTP attempts were made. */
  readonly attempts: number;
  /** How the last attempt ended. */
  readonly lastFailure: UnavailableReason;
  /** HTTP status of the last attempt, when it got one. */
  readonly httpStatus: number | null;

  constructor(
    endpoint: PortOneEndpoint,
    attempts: number,
    lastFailure: UnavailableReason,
    httpStatus: number | null,
    options?: ErrorOptions,
  ) {
    const detail = httpStatus === null ? lastFailure : `HTTP ${httpStatus}`;
    super('PORTONE_UNAVAILABLE', `PortOne ${endpoint} unavailable after ${attempts} attempt(s): ${detail}`, true, endpoint, options);
    this.attempts = attempts;
    this.lastFailure = lastFailure;
    this.httpStatus = httpStatus;
  }
}

/**
 * PortOne refused our credentials (`POST /users/getToken` answered 401 or an error envelope), or
 * refused a token it had just issued. Permanent until the configuration is fixed.
 */
export class PortOneAuthError extends PortOneError {
  /** HTTP status of the refusal. */
  readonly httpStatus: number;
  /** PortOne's own message, or null when it sent none. */
  readonly portoneMessage: string | null;

  constructor(endpoint: PortOneEndpoint, httpStatus: number, portoneMessage: string | null) {
    super('PORTONE_AUTH_FAILED', portoneMessage ?? `PortOne refused the credentials (HTTP ${httpStatus})`, false, endpoint);
    this.httpStatus = httpStatus;
    this.portoneMessage = portoneMessage;
  }
}

/**
 * PortOne answered success with a body we cannot use (a payment without `imp_uid`, an unknown
 * status). Permanent: retrying the same call would read the same body, and guessing is worse.
 */
export class PortOneProtocolError extends PortOneError {
  constructor(endpoint: PortOneEndpoint, message: string) {
    super('PORTONE_PROTOCOL_ERROR', message, false, endpoint);
  }
}
