/**
 * One face for both PortOne APIs, so settlement (verify, paid, refund, release, expiry, watch) is
 * written once. Every payment dropgate knows is named by a key that says which API it came from:
 *
 * - V1: the `imp_uid` itself (`[A-Za-z0-9_-]`, as the V1 endpoints' schemas require);
 * - V2: `v2.<transactionId>`. V2's paymentId is the order's merchant_uid, so (merchant_uid, key)
 *   names one attempt; a `.` can never come through a V1 endpoint (imp_uid is `[A-Za-z0-9_-]`), so a
 *   V1 caller cannot make the workers ask V2, nor the other way round. (Not `:`: BullMQ refuses it in
 *   the job ids the key becomes part of.)
 *
 * V2 payments are shown in V1's shape ({@link PortOnePayment}), with `imp_uid` = the key:
 * `PAID` and `PARTIAL_CANCELLED` → `paid` (V1 keeps a partly cancelled payment `paid`, with
 * `cancel_amount`), `CANCELLED` → `cancelled`, `FAILED` → `failed`, `READY`, `PAY_PENDING`,
 * `VIRTUAL_ACCOUNT_ISSUED` → `ready`. V2 keeps one payment per paymentId and shows only its latest
 * attempt; an attempt that is no longer the latest was not paid (PortOne refuses a new attempt on a
 * paid payment), so it is shown `failed`.
 */
import { PortOneAuthError, PortOneProtocolError } from './errors.ts';
import type { PortOneClient } from './client.ts';
import type { PortOneV2Client, PortOneV2Payment } from './v2.ts';
import type { CancelPaymentRequest, PortOnePayment, PortOnePaymentStatus } from './types.ts';

/** Which API an order's payments go through. */
export type PortOneApi = 'v1' | 'v2';

const V2_PREFIX = 'v2.';

/** The key dropgate names a V2 attempt by. */
export function v2PaymentKey(transactionId: string): string {
  return V2_PREFIX + transactionId;
}

/** The API a payment key belongs to. */
export function apiOfPaymentKey(key: string): PortOneApi {
  return key.startsWith(V2_PREFIX) ? 'v2' : 'v1';
}

const V2_TO_V1: Readonly<Record<PortOneV2Payment['status'], PortOnePaymentStatus>> = {
  PAID: 'paid',
  PARTIAL_CANCELLED: 'paid',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
  READY: 'ready',
  PAY_PENDING: 'ready',
  VIRTUAL_ACCOUNT_ISSUED: 'ready',
};

/** A V2 payment in V1's shape, named by `key`. */
export function fromV2Payment(p: PortOneV2Payment, key: string): PortOnePayment {
  const current = key === v2PaymentKey(p.transactionId);
  const status: PortOnePaymentStatus = current ? V2_TO_V1[p.status] : 'failed';
  return {
    imp_uid: key,
    merchant_uid: p.id,
    amount: p.total,
    cancel_amount: current ? p.cancelled : 0,
    currency: p.currency,
    status,
    fail_reason: current ? p.failReason : `superseded by a later attempt (${p.transactionId})`,
    paid_at: current && p.paidAtMs > 0 ? Math.floor(p.paidAtMs / 1000) : 0,
    failed_at: current ? Math.floor(p.failedAtMs / 1000) : 0,
    cancelled_at: 0,
    pay_method: null,
    pg_provider: p.pgProvider,
  };
}

/** The first page number of {@link PaymentGateway.listPaidPayments} on `api`. */
export function firstListPage(api: PortOneApi): number {
  return api === 'v1' ? 1 : 0;
}

/** Routes each call to the API the payment (or the order) belongs to. */
export class PaymentGateway {
  readonly v1: PortOneClient;
  readonly v2: PortOneV2Client | null;

  constructor(v1: PortOneClient, v2: PortOneV2Client | null) {
    this.v1 = v1;
    this.v2 = v2;
  }

  #v2(endpoint: 'v2GetPayment' | 'v2CancelPayment' | 'v2ListPaidPayments'): PortOneV2Client {
    if (this.v2 === null) throw new PortOneAuthError(endpoint, 0, 'PORTONE_V2_API_SECRET is not set: dropgate cannot ask PortOne V2');
    return this.v2;
  }

  /**
   * The payment `key` of order `merchantUid`, as PortOne says it is now; null when PortOne does not
   * know it. V2 shows only a payment's current attempt: a key that is not that attempt is answered
   * null, never made up from the current one. A signed webhook may pair a paymentId with another
   * payment's or an old attempt's transactionId; reading it as "this order's attempt, failed" wrote
   * rows PortOne never had and overwrote real ones with the current attempt's amount (found by the
   * chaos campaign's V2 scenarios, seeds 3190125541, 2957158678, 3148921493, 2288246919, 3812051794).
   * An attempt that is no longer current was never paid (V2 refuses a new attempt on a paid payment),
   * so nothing is lost: the hold it rode on is released by verification if nothing else rides on it.
   */
  async getPayment(merchantUid: string, key: string): Promise<PortOnePayment | null> {
    if (apiOfPaymentKey(key) === 'v1') return this.v1.getPayment(key);
    const p = await this.#v2('v2GetPayment').getPayment(merchantUid);
    return p === null || key !== v2PaymentKey(p.transactionId) ? null : fromV2Payment(p, key);
  }

  /**
   * Several V1 payments at once (see {@link PortOneClient.getPayments}): keys PortOne did not answer
   * for are missing from the map, not said to be unknown. V1 keys only.
   */
  getV1Payments(keys: readonly string[]): Promise<Map<string, PortOnePayment>> {
    if (keys.some((k) => apiOfPaymentKey(k) !== 'v1')) throw new TypeError('getV1Payments: V1 payment keys only');
    return this.v1.getPayments(keys);
  }

  /**
   * Every payment attempt of an order on its API, oldest first ([] when it has none). V1 lists them
   * all (`GET /payments/findAll`); V2 keeps one payment per paymentId and shows its current attempt.
   */
  async findAllPayments(merchantUid: string, api: PortOneApi): Promise<PortOnePayment[]> {
    if (api === 'v1') return this.v1.findAllPaymentsByMerchantUid(merchantUid);
    const p = await this.#v2('v2GetPayment').getPayment(merchantUid);
    return p === null ? [] : [fromV2Payment(p, v2PaymentKey(p.transactionId))];
  }

  /**
   * One page of the store's payments paid between `fromMs` and `toMs` on API `api`, oldest first, in
   * V1's shape, each with the time the listing orders it by (`at`, epoch ms: V1 the paid time, V2 the
   * time its status last changed), and the next page (null after the last). Pages are numbered from 1
   * on V1 and from 0 on V2: start from `firstListPage(api)`.
   */
  async listPaidPayments(api: PortOneApi, fromMs: number, toMs: number, page: number): Promise<{ payments: { payment: PortOnePayment; at: number }[]; next: number | null }> {
    if (api === 'v1') {
      const { payments, next } = await this.v1.listPaidPayments(Math.floor(fromMs / 1000), Math.ceil(toMs / 1000), page);
      return { payments: payments.map((p) => ({ payment: p, at: p.paid_at * 1000 })), next };
    }
    const { payments, more } = await this.#v2('v2ListPaidPayments').listPaidPayments(fromMs, toMs, page);
    return {
      payments: payments.map((p) => ({ payment: fromV2Payment(p, v2PaymentKey(p.transactionId)), at: p.statusChangedAtMs || p.paidAtMs })),
      next: more ? page + 1 : null,
    };
  }

  /**
   * One page of the store's V1 payments cancelled in full between `fromMs` and `toMs` (by the time
   * they were cancelled), oldest first, each with that time (`at`, epoch ms), and the next page (null
   * after the last; pages from 1). V1 lists a payment by its paid time only while it is paid, so a
   * cancel is seen here; V2's {@link listPaidPayments} lists cancelled payments itself.
   */
  async listV1CancelledPayments(fromMs: number, toMs: number, page: number): Promise<{ payments: { payment: PortOnePayment; at: number }[]; next: number | null }> {
    const { payments, next } = await this.v1.listCancelledPayments(Math.floor(fromMs / 1000), Math.ceil(toMs / 1000), page);
    return { payments: payments.map((p) => ({ payment: p, at: p.cancelled_at * 1000 })), next };
  }

  /**
   * Refunds (see {@link PortOneClient.cancelPayment}; V2's `currentCancellableAmount` plays the
   * checksum) and resolves with the payment after the cancel.
   */
  async cancelPayment(req: CancelPaymentRequest & { merchantUid: string }): Promise<PortOnePayment> {
    if (apiOfPaymentKey(req.impUid) === 'v1') return this.v1.cancelPayment(req);
    if (!Number.isSafeInteger(req.checksum) || req.checksum < 0) {
      throw new TypeError(`cancelPayment: checksum must be a non-negative integer, got ${req.checksum}`);
    }
    const v2 = this.#v2('v2CancelPayment');
    await v2.cancelPayment({
      paymentId: req.merchantUid, currentCancellableAmount: req.checksum, reason: req.reason,
      ...(req.amount !== undefined ? { amount: req.amount } : {}),
    });
    const after = await this.getPayment(req.merchantUid, req.impUid);
    if (after === null) throw new PortOneProtocolError('v2CancelPayment', `PortOne V2 cancelled ${req.merchantUid} and then did not know it`);
    return after;
  }
}
