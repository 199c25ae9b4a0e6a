/**
 * PortOne V2 REST (`https://api.portone.io`, `Authorization: PortOne <API secret>`), through
 * `@portone/server-sdk`'s `PaymentClient`: the SDK builds the requests and names PortOne's refusals
 * (`error.data.type`). What the SDK does not do is added here, because dropgate's guarantees need it:
 *
 * - a deadline per attempt (the SDK's fetch has none: a PortOne that never answers would hang a job or
 *   a buyer's request forever);
 * - retries with backoff for what may pass (no answer, 5xx without a named error); a refusal PortOne
 *   names (`PAYMENT_NOT_FOUND`, `INFORMATION_MISMATCH`, ...) is an answer and is never retried;
 * - the same error classes as the V1 client, so callers branch on `transient` alone.
 *
 * `confirmPayment` is never retried: whether a lost answer approved the payment is PortOne's to say
 * (the caller keeps the hold and asks later), not something a second request should guess at.
 */
import { PaymentClient } from '@portone/server-sdk/payment';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, reportRequest } from './client.ts';
import {
  PortOneApiError, PortOneAuthError, PortOneError, PortOneProtocolError, PortOneUnavailableError, type PortOneEndpoint,
} from './errors.ts';
import type { PortOneRequestResult } from './types.ts';

/** V2 payment statuses (`GET /payments/{paymentId}`). */
export type PortOneV2Status =
  'READY' | 'PAY_PENDING' | 'VIRTUAL_ACCOUNT_ISSUED' | 'PAID' | 'FAILED' | 'PARTIAL_CANCELLED' | 'CANCELLED';

const V2_STATUSES: ReadonlySet<string> = new Set<PortOneV2Status>([
  'READY', 'PAY_PENDING', 'VIRTUAL_ACCOUNT_ISSUED', 'PAID', 'FAILED', 'PARTIAL_CANCELLED', 'CANCELLED',
]);

/** The fields of a V2 payment dropgate relies on. */
export interface PortOneV2Payment {
  /** The merchant's paymentId: dropgate's merchant_uid. */
  id: string;
  /** The current (latest) attempt. */
  transactionId: string;
  status: PortOneV2Status;
  storeId: string | null;
  currency: string;
  /** `amount.total`. */
  total: number;
  /** `amount.cancelled` (0 when none). */
  cancelled: number;
  /** Epoch ms of `paidAt`; 0 when not paid. */
  paidAtMs: number;
  /** Epoch ms of `failedAt`; 0 when not failed. */
  failedAtMs: number;
  /** Epoch ms of `statusChangedAt` (what the paid-payment listing filters and sorts by); 0 when absent. */
  statusChangedAtMs: number;
  failReason: string | null;
  pgProvider: string | null;
}

/**
 * PortOne's named refusals of a manual confirmation (`POST /payments/{id}/confirm`); `OTHER` is any
 * refusal PortOne names that is not one of these (its type is in the result's message).
 */
export type ConfirmRefusal =
  | 'ALREADY_PAID' | 'ALREADY_PAID_OR_WAITING' | 'INFORMATION_MISMATCH' | 'INVALID_PAYMENT_TOKEN' | 'PAYMENT_NOT_FOUND' | 'PG_PROVIDER'
  | 'FORBIDDEN' | 'INVALID_REQUEST' | 'UNAUTHORIZED' | 'OTHER';

const CONFIRM_REFUSALS: ReadonlySet<string> = new Set<ConfirmRefusal>([
  'ALREADY_PAID', 'ALREADY_PAID_OR_WAITING', 'INFORMATION_MISMATCH', 'INVALID_PAYMENT_TOKEN', 'PAYMENT_NOT_FOUND', 'PG_PROVIDER',
  'FORBIDDEN', 'INVALID_REQUEST', 'UNAUTHORIZED',
]);

export type ConfirmResult =
  | { kind: 'approved'; paidAtMs: number }
  | { kind: 'refused'; refusal: ConfirmRefusal; message: string | null };

export interface PortOneV2ClientOptions {
  /** REST origin, e.g. `https://api.portone.io` or the simulator's URL. */
  baseUrl: string;
  /** V2 API secret. */
  secret: string;
  /** The store every call names. */
  storeId?: string | undefined;
  /** Deadline of one attempt, body included. Default 4000 ms. */
  timeoutMs?: number;
  /** Retries after the first attempt of a retryable call. Default 3. */
  retries?: number;
  /** Base of the jittered exponential backoff. Default 200 ms. */
  backoffMs?: number;
  /** Called once per attempt, for metrics; its exceptions are swallowed. */
  onRequest?: (endpoint: PortOneEndpoint, result: PortOneRequestResult, seconds: number) => void;
}

const TIMEOUT = Symbol('timeout');

/** Payments per page of the V2 paid-payment listing. */
const V2_PAGE_SIZE = 100;

/** Error types V2 names for a refusal: an answer, not an outage. Anything else is treated as no answer. */
const NAMED_REFUSALS: Readonly<Record<string, number>> = {
  ALREADY_PAID: 409, INFORMATION_MISMATCH: 409, INVALID_PAYMENT_TOKEN: 400, PAYMENT_NOT_FOUND: 404, PG_PROVIDER: 502,
  FORBIDDEN: 403, INVALID_REQUEST: 400, UNAUTHORIZED: 401, PAYMENT_NOT_PAID: 409, PAYMENT_ALREADY_CANCELLED: 409,
  CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN: 409, CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT: 409, ALREADY_PAID_OR_WAITING: 409,
  CANCEL_TAX_AMOUNT_EXCEEDS_CANCELLABLE_TAX_AMOUNT: 409, CANCEL_TAX_FREE_AMOUNT_EXCEEDS_CANCELLABLE_TAX_FREE_AMOUNT: 409,
  NEGATIVE_PROMOTION_ADJUSTED_CANCEL_AMOUNT: 409, PROMOTION_PAY_METHOD_DOES_NOT_MATCH: 409, SUM_OF_PARTS_EXCEEDS_CANCEL_AMOUNT: 409,
  REMAINED_AMOUNT_LESS_THAN_PROMOTION_MIN_PAYMENT_AMOUNT: 409, MAX_TRANSACTION_COUNT_REACHED: 409,
};

/** A named V2 refusal: the SDK's `error.data`. */
function namedRefusal(error: unknown): { type: string; message: string | null } | null {
  if (typeof error !== 'object' || error === null || !('data' in error)) return null;
  const data = (error as { data: unknown }).data;
  if (typeof data !== 'object' || data === null) return null;
  const type = (data as Record<string, unknown>)['type'];
  if (typeof type !== 'string' || !(type in NAMED_REFUSALS)) return null;
  const d = data as Record<string, unknown>;
  const message = typeof d['pgMessage'] === 'string' ? d['pgMessage'] : typeof d['message'] === 'string' ? d['message'] : null;
  return { type, message };
}

/** PortOne V2 REST client; see the module comment. */
export class PortOneV2Client {
  readonly #sdk: ReturnType<typeof PaymentClient>;
  readonly #storeId: string | undefined;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #onRequest: PortOneV2ClientOptions['onRequest'];

  constructor(opts: PortOneV2ClientOptions) {
    try {
      new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`PortOneV2Client: baseUrl is not a URL: ${JSON.stringify(opts.baseUrl)}`);
    }
    if (!opts.secret) throw new TypeError('PortOneV2Client: secret is required');
    // The SDK resolves `/payments/...` against the origin: a path in baseUrl would be dropped, so none is allowed.
    const origin = new URL(opts.baseUrl);
    if (origin.pathname !== '/' && origin.pathname !== '') throw new TypeError('PortOneV2Client: baseUrl must be an origin without a path');
    this.#sdk = PaymentClient({ secret: opts.secret, baseUrl: origin.origin, ...(opts.storeId ? { storeId: opts.storeId } : {}) });
    this.#storeId = opts.storeId;
    this.#timeoutMs = opts.timeoutMs ?? 4000;
    this.#retries = opts.retries ?? 3;
    this.#backoffMs = opts.backoffMs ?? 200;
    this.#onRequest = opts.onRequest;
  }

  /** `GET /payments/{paymentId}`; null when PortOne knows no such payment. */
  async getPayment(paymentId: string): Promise<PortOneV2Payment | null> {
    const storeId = this.#storeId;
    const raw = await this.#retried('v2GetPayment', () => this.#sdk.getPayment({ paymentId, ...(storeId ? { storeId } : {}) }), ['PAYMENT_NOT_FOUND']);
    return raw === null ? null : parseV2Payment('v2GetPayment', raw);
  }

  /**
   * `POST /payments/{paymentId}/cancel` with `currentCancellableAmount`: PortOne refuses the cancel
   * when the cancellable balance differs from it, so a retried or concurrent refund never refunds twice.
   */
  async cancelPayment(req: { paymentId: string; currentCancellableAmount: number; reason: string; amount?: number }): Promise<void> {
    await this.#retried('v2CancelPayment', () => this.#sdk.cancelPayment({
      paymentId: req.paymentId,
      reason: req.reason,
      currentCancellableAmount: req.currentCancellableAmount,
      ...(req.amount !== undefined ? { amount: req.amount } : {}),
    }), []);
  }

  /** `POST /payments/{paymentId}/pre-register`: PortOne stops a payment window opened with another amount. */
  async preRegisterPayment(paymentId: string, totalAmount: number, currency: string): Promise<void> {
    await this.#retried('v2PreRegister', () => this.#sdk.preRegisterPayment({ paymentId, totalAmount, currency: currency as 'KRW' }), []);
  }

  /**
   * `POST /payments/{paymentId}/confirm` (manual confirmation), once, within `timeoutMs`.
   * @returns approved, or PortOne's named refusal.
   * @throws PortOneUnavailableError when no answer came in time (the payment's fate is unknown).
   */
  async confirmPayment(req: { paymentId: string; paymentToken: string; txId?: string; totalAmount: number; currency: string; timeoutMs?: number }): Promise<ConfirmResult> {
    const started = performance.now();
    const timeoutMs = req.timeoutMs ?? this.#timeoutMs;
    let answer: unknown;
    try {
      answer = await within(this.#sdk.confirmPayment({
        paymentId: req.paymentId,
        paymentToken: req.paymentToken,
        totalAmount: req.totalAmount,
        currency: req.currency as 'KRW',
        ...(req.txId !== undefined ? { txId: req.txId } : {}),
      }), timeoutMs);
    } catch (error) {
      const named = namedRefusal(error);
      if (named !== null) {
        this.#report('v2ConfirmPayment', 'api_error', started);
        // A refusal outside the list is still a refusal, never taken for one it is not (attack round 20A:
        // the route looked it up in its own table and answered 500).
        if (CONFIRM_REFUSALS.has(named.type)) return { kind: 'refused', refusal: named.type as ConfirmRefusal, message: named.message };
        return { kind: 'refused', refusal: 'OTHER', message: named.message === null ? named.type : `${named.type}: ${named.message}` };
      }
      this.#report('v2ConfirmPayment', 'http_error', started);
      throw new PortOneUnavailableError('v2ConfirmPayment', 1, 'http_error', null, { cause: error });
    }
    if (answer === TIMEOUT) {
      this.#report('v2ConfirmPayment', 'timeout', started);
      throw new PortOneUnavailableError('v2ConfirmPayment', 1, 'timeout', null);
    }
    this.#report('v2ConfirmPayment', 'ok', started);
    const paidAt = (answer as { payment?: { paidAt?: unknown } } | null)?.payment?.paidAt;
    return { kind: 'approved', paidAtMs: typeof paidAt === 'string' ? Date.parse(paidAt) || Date.now() : Date.now() };
  }

  /**
   * `GET /payments` filtered to the store's payments whose status became PAID (or PARTIAL_CANCELLED)
   * between `fromMs` and `untilMs`, oldest first: page `page` (from 0) of V2_PAGE_SIZE, and whether
   * more pages follow. The ledger sweep reads it to find paid payments no webhook told dropgate about.
   */
  async listPaidPayments(fromMs: number, untilMs: number, page: number): Promise<{ payments: PortOneV2Payment[]; more: boolean }> {
    const storeId = this.#storeId;
    const raw = await this.#retried('v2ListPaidPayments', () => this.#sdk.getPayments({
      page: { number: page, size: V2_PAGE_SIZE },
      filter: {
        ...(storeId ? { storeId } : {}),
        timestampType: 'STATUS_CHANGED_AT', from: new Date(fromMs).toISOString(), until: new Date(untilMs).toISOString(),
        // CANCELLED too: a ticketed payment cancelled in full at PortOne whose webhook was lost must
        // have its tickets voided (attack round 26A); V2 lists a payment again when its status changes.
        status: ['PAID', 'PARTIAL_CANCELLED', 'CANCELLED'], sortBy: 'STATUS_CHANGED_AT', sortOrder: 'ASC',
      },
    }), []);
    const body = raw as { items?: unknown; page?: { totalCount?: unknown } } | null;
    if (typeof body !== 'object' || body === null || !Array.isArray(body.items)) {
      throw new PortOneProtocolError('v2ListPaidPayments', 'PortOne answered without a list of payments');
    }
    const payments = body.items.map((item) => parseV2Payment('v2ListPaidPayments', item));
    const total = typeof body.page?.totalCount === 'number' ? body.page.totalCount : 0;
    return { payments, more: payments.length > 0 && (page + 1) * V2_PAGE_SIZE < total };
  }

  /**
   * Runs `call` with a deadline per attempt and retries on no answer. A named refusal listed in
   * `absent` resolves null; any other named refusal throws PortOneApiError (or PortOneAuthError).
   */
  async #retried(endpoint: PortOneEndpoint, call: () => Promise<unknown>, absent: readonly string[]): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let reason: 'timeout' | 'network_error' | 'http_error';
      let cause: unknown;
      try {
        const answer = await within(call(), this.#timeoutMs);
        if (answer !== TIMEOUT) {
          this.#report(endpoint, 'ok', started);
          return answer;
        }
        reason = 'timeout';
      } catch (error) {
        const named = namedRefusal(error);
        if (named !== null) {
          if (absent.includes(named.type)) {
            this.#report(endpoint, 'not_found', started);
            return null;
          }
          this.#report(endpoint, 'api_error', started);
          if (named.type === 'UNAUTHORIZED' || named.type === 'FORBIDDEN') {
            throw new PortOneAuthError(endpoint, NAMED_REFUSALS[named.type]!, named.message);
          }
          throw new PortOneApiError(endpoint, NAMED_REFUSALS[named.type]!, null, named.message ?? named.type, named.type);
        }
        if (error instanceof PortOneError) throw error;
        // A body that is not PortOne's error (a proxy's 502 page), or no connection at all.
        reason = error instanceof TypeError && /fetch failed/.test(error.message) ? 'network_error' : 'http_error';
        cause = error;
      }
      this.#report(endpoint, reason, started);
      if (attempt > this.#retries) throw new PortOneUnavailableError(endpoint, attempt, reason, null, { cause });
      await sleep(backoffDelay(this.#backoffMs, attempt));
    }
  }

  #report(endpoint: PortOneEndpoint, result: PortOneRequestResult, startedAt: number): void {
    reportRequest(this.#onRequest, endpoint, result, startedAt);
  }
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  let timer: NodeJS.Timeout;
  // The abandoned request still settles later: keep its rejection from going unhandled.
  promise.catch(() => undefined);
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<typeof TIMEOUT>((resolve) => { timer = setTimeout(resolve, ms, TIMEOUT); }),
  ]);
}

const msOf = (value: unknown): number => (typeof value === 'string' ? Date.parse(value) || 0 : 0);

/** Reads the fields dropgate relies on; a payment without identity, amount or a known status is refused. */
export function parseV2Payment(endpoint: PortOneEndpoint, raw: unknown): PortOneV2Payment {
  if (typeof raw !== 'object' || raw === null) throw new PortOneProtocolError(endpoint, 'PortOne answered without a payment');
  const p = raw as Record<string, unknown>;
  const amount = p['amount'] as Record<string, unknown> | undefined;
  const total = amount?.['total'];
  if (typeof p['id'] !== 'string' || typeof p['transactionId'] !== 'string' || typeof total !== 'number') {
    throw new PortOneProtocolError(endpoint, 'PortOne V2 payment lacks id, transactionId or amount.total');
  }
  const status = p['status'];
  if (typeof status !== 'string' || !V2_STATUSES.has(status)) {
    throw new PortOneProtocolError(endpoint, `PortOne V2 payment ${p['id']} has an unknown status ${JSON.stringify(status)}`);
  }
  const cancelled = amount?.['cancelled'];
  const channel = p['channel'] as Record<string, unknown> | undefined;
  return {
    id: p['id'],
    transactionId: p['transactionId'],
    status: status as PortOneV2Status,
    storeId: typeof p['storeId'] === 'string' ? p['storeId'] : null,
    currency: typeof p['currency'] === 'string' ? p['currency'] : 'KRW',
    total,
    cancelled: typeof cancelled === 'number' && Number.isFinite(cancelled) ? cancelled : 0,
    paidAtMs: msOf(p['paidAt']),
    failedAtMs: msOf(p['failedAt']),
    statusChangedAtMs: msOf(p['statusChangedAt']),
    failReason: typeof (p['failure'] as Record<string, unknown> | undefined)?.['reason'] === 'string'
      ? (p['failure'] as Record<string, string>)['reason']!
      : null,
    pgProvider: typeof channel?.['pgProvider'] === 'string' ? channel['pgProvider'] : null,
  };
}
