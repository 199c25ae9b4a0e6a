import type { PortOneEndpoint } from './errors.ts';

/** How one HTTP attempt ended, as reported to {@link PortOneClientOptions.onRequest}. */
export type PortOneRequestResult = 'ok' | 'not_found' | 'api_error' | 'http_error' | 'timeout' | 'network_error';

/** Options of {@link PortOneClient}. */
export interface PortOneClientOptions {
  /** REST base, e.g. `https://api.iamport.kr` or the simulator's URL. */
  baseUrl: string;
  /** V1 REST API key (`imp_key`). */
  impKey: string;
  /** V1 REST API secret (`imp_secret`). */
  impSecret: string;
  /** Deadline of one HTTP attempt, body included. Default 4000 ms. */
  timeoutMs?: number;
  /** Retries after the first attempt for timeouts, network errors, 429 and 5xx. Default 3. */
  retries?: number;
  /** Base of the exponential backoff between retries (jittered). Default 200 ms. */
  backoffMs?: number;
  /**
   * Called once per HTTP attempt (retries included), for metrics. Exceptions it throws are swallowed:
   * a metrics bug must not fail a payment decision.
   */
  onRequest?: (endpoint: PortOneEndpoint, result: PortOneRequestResult, seconds: number) => void;
}

/** V1 payment statuses (`GET /payments/{imp_uid}`). */
export type PortOnePaymentStatus = 'ready' | 'paid' | 'cancelled' | 'failed';

/** The fields of a V1 payment dropgate relies on. Times are unix seconds, 0 when not reached. */
export interface PortOnePayment {
  imp_uid: string;
  merchant_uid: string;
  /** Amount requested, in the currency's minor unit. */
  amount: number;
  /** Amount refunded so far (accumulates over partial cancels). */
  cancel_amount: number;
  currency: string;
  status: PortOnePaymentStatus;
  fail_reason: string | null;
  paid_at: number;
  failed_at: number;
  cancelled_at: number;
  pay_method: string | null;
  pg_provider: string | null;
}

/** Arguments of {@link PortOneClient.cancelPayment}. */
export interface CancelPaymentRequest {
  impUid: string;
  /** Sent as a cross-check: PortOne refuses the cancel when it does not match the payment. */
  merchantUid?: string;
  /** Amount to refund; omitted = the whole refundable balance. */
  amount?: number;
  /**
   * The refundable balance (amount - cancel_amount) the caller believes the payment has. PortOne
   * refuses the cancel when it differs, so a retried or concurrent refund can never refund twice.
   */
  checksum: number;
  /** Why the payment is refunded (kept by PortOne, shown in its console). */
  reason: string;
}
