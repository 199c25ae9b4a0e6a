/**
 * PortOne V2 pieces of the simulator: Standard Webhooks signing, the V2 payment as
 * `GET /payments/{paymentId}` shows it, the bodies of confirm calls and webhooks in both webhook
 * versions, and the V2 payment window request.
 *
 * V2 keeps one payment per paymentId (the merchant's id: dropgate's merchant_uid) with one attempt
 * (transactionId) after another. Each attempt is a payment record of its own in the simulator, named in
 * the ledger `v2.<transactionId>`, the key dropgate's record uses, so the same invariant checks read
 * V1 and V2 ledgers. The latest attempt is the payment V2's REST API shows.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { SimError } from './errors.ts';
import type { Faults, PaymentOutcome, SimPayment, SimPaymentStatus } from './types.ts';
import { isAmount, parseFaults } from './validate.ts';

export type V2WebhookVersion = '2024-04-25' | '2024-01-01';
export type V2Status = 'READY' | 'PAY_PENDING' | 'VIRTUAL_ACCOUNT_ISSUED' | 'PAID' | 'FAILED' | 'PARTIAL_CANCELLED' | 'CANCELLED';

/** What a V2 attempt carries beyond the V1-shaped payment record. */
export interface V2Attempt {
  transactionId: string;
  storeId: string;
  webhookVersion: V2WebhookVersion;
  /** Manual confirmation: the token the browser got; null for the confirm-webhook flow. */
  paymentToken: string | null;
  /** What the PG does once the payment is confirmed (manual) or approved (confirm webhook). */
  outcome: PaymentOutcome;
}

/** `POST /sim/v2/payments`: the buyer opens a V2 payment window. */
export interface V2PaymentWindowRequest {
  /** The merchant's paymentId (dropgate's merchant_uid). */
  payment_id: string;
  amount: number;
  /**
   * `confirm` (default): PortOne calls `confirm_url` (if given) before the PG, like V1's confirm.
   * `manual`: the browser gets a paymentToken and the merchant must call `POST /payments/{id}/confirm`.
   */
  mode?: 'confirm' | 'manual';
  confirm_url?: string;
  /** Omitted: the simulator's default V2 webhook URL, if any; otherwise no webhook. */
  webhook_url?: string;
  /** Default `paid`. With `manual`, the PG's answer to the merchant's confirmation. */
  outcome?: PaymentOutcome;
  buyer_delay_ms?: number;
  faults?: Faults;
  currency?: string;
  pg_provider?: string;
  /** Default the simulator's store. Another store's payment is refused by `confirm` with that store. */
  store_id?: string;
  /** Webhook version of the store (console setting). Default 2024-04-25. */
  webhook_version?: V2WebhookVersion;
  /** Fields merged over the confirm call's body (null removes one): forged or odd bodies for tests. */
  confirm_body?: Record<string, unknown>;
}

export const V2_STATUS_OF: (p: SimPayment) => V2Status = (p) => {
  switch (p.status) {
    case 'paid': return p.cancel_amount > 0 ? 'PARTIAL_CANCELLED' : 'PAID';
    case 'cancelled': return 'CANCELLED';
    case 'failed': return 'FAILED';
    default: return 'READY';
  }
};

/** The V2 webhook type for a V1-shaped status. */
export function webhookTypeOf(p: SimPayment, status: SimPaymentStatus): string {
  switch (status) {
    case 'paid': return p.cancel_amount > 0 ? 'Transaction.PartialCancelled' : 'Transaction.Paid';
    case 'cancelled': return p.cancel_amount < p.amount ? 'Transaction.PartialCancelled' : 'Transaction.Cancelled';
    case 'failed': return 'Transaction.Failed';
    default: return 'Transaction.Ready';
  }
}

export function newTransactionId(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function newPaymentToken(): string {
  return `ptk_${randomBytes(24).toString('base64url')}`;
}

/** A fresh Standard Webhooks secret (`whsec_` + base64 of 24 random bytes). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/** Standard Webhooks headers for `body`: `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`. */
export function signedHeaders(secret: string, id: string, body: string, timestampSeconds = Math.floor(Date.now() / 1000)): Record<string, string> {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}

export function newWebhookId(): string {
  return `msg_${randomBytes(12).toString('base64url')}`;
}

const iso = (unixSeconds: number): string | undefined => (unixSeconds > 0 ? new Date(unixSeconds * 1000).toISOString() : undefined);

/** The payment as V2's `GET /payments/{paymentId}` returns it (the fields dropgate and the SDK read). */
/**
 * When a payment's status last changed (unix seconds; 0 when unknown): its last cancel for a paid one
 * partly cancelled, else its paid, cancelled or failed time, else when it started.
 */
export function statusChangedAt(p: SimPayment): number {
  const lastCancel = p.cancel_history.at(-1)?.cancelled_at ?? 0;
  if (p.status === 'paid') return lastCancel > 0 ? lastCancel : p.paid_at;
  if (p.status === 'cancelled') return p.cancelled_at;
  if (p.status === 'failed') return p.failed_at;
  return p.started_at;
}

export function v2PaymentJson(p: SimPayment, a: V2Attempt): Record<string, unknown> {
  const status = V2_STATUS_OF(p);
  const now = new Date().toISOString();
  const paid = p.paid_at > 0;
  return {
    status,
    id: p.merchant_uid,
    transactionId: a.transactionId,
    merchantId: 'merchant-simulator',
    storeId: a.storeId,
    channel: { type: 'TEST', id: 'channel-simulator', key: 'channel-key-simulator', name: 'simulator', pgProvider: p.pg_provider ?? 'INICIS_V2', pgMerchantId: 'sim' },
    version: 'V2',
    requestedAt: iso(p.started_at) ?? now,
    updatedAt: now,
    statusChangedAt: iso(statusChangedAt(p)) ?? now,
    orderName: 'ticket',
    amount: { total: p.amount, taxFree: 0, discount: 0, paid: paid ? p.amount : 0, cancelled: p.cancel_amount, cancelledTaxFree: 0 },
    currency: p.currency,
    customer: {},
    disputes: [],
    ...(paid ? { paidAt: iso(p.paid_at), pgTxId: p.pg_tid } : {}),
    ...(status === 'FAILED' ? { failedAt: iso(p.failed_at) ?? now, failure: { reason: p.fail_reason ?? undefined } } : {}),
    ...(status === 'CANCELLED' ? { cancelledAt: iso(p.cancelled_at) ?? now } : {}),
    ...(p.cancel_history.length > 0
      ? {
          cancellations: p.cancel_history.map((h) => ({
            status: 'SUCCEEDED', id: h.cancellation_id, pgCancellationId: h.pg_tid, totalAmount: h.amount, taxFreeAmount: 0, vatAmount: 0,
            reason: h.reason, cancelledAt: iso(h.cancelled_at), requestedAt: iso(h.cancelled_at),
          })),
        }
      : {}),
  };
}

/** The confirm call's body in the store's webhook version. */
export function confirmBody(p: SimPayment, a: V2Attempt): Record<string, unknown> {
  if (a.webhookVersion === '2024-01-01') return { payment_id: p.merchant_uid, tx_id: a.transactionId, total_amount: p.amount };
  return {
    type: 'Transaction.Confirm',
    timestamp: new Date().toISOString(),
    data: { paymentId: p.merchant_uid, storeId: a.storeId, transactionId: a.transactionId, totalAmount: p.amount },
  };
}

/** A webhook's body in the store's webhook version. */
export function webhookBody(p: SimPayment, a: V2Attempt, type: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (a.webhookVersion === '2024-01-01') {
    return { payment_id: p.merchant_uid, tx_id: a.transactionId, status: type.replace(/^Transaction\./, ''), ...extra };
  }
  return {
    type,
    timestamp: new Date().toISOString(),
    data: { paymentId: p.merchant_uid, storeId: a.storeId, transactionId: a.transactionId, ...extra },
  };
}

/** V2 REST error answer: `{type, message}` with PortOne's status. */
export interface V2Failure {
  status: number;
  type: string;
  message: string;
  extra?: Record<string, unknown>;
}

export function v2Failure(status: number, type: string, message: string, extra?: Record<string, unknown>): V2Failure {
  return { status, type, message, ...(extra ? { extra } : {}) };
}

const OUTCOMES: ReadonlySet<string> = new Set<PaymentOutcome>(['paid', 'failed', 'abandoned']);

/** Checks a V2 payment window request (throws SimError INVALID_REQUEST). */
export function parseV2PaymentWindowRequest(input: unknown): V2PaymentWindowRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new SimError('INVALID_REQUEST', 'body must be a JSON object');
  const r = input as Record<string, unknown>;
  const bad = (m: string) => new SimError('INVALID_REQUEST', m);
  if (typeof r['payment_id'] !== 'string' || r['payment_id'] === '' || r['payment_id'].length > 80) throw bad('payment_id must be a string of 1 to 80 characters');
  if (!isAmount(r['amount'])) throw bad('amount must be a positive integer');
  if (r['mode'] !== undefined && r['mode'] !== 'confirm' && r['mode'] !== 'manual') throw bad('mode must be confirm or manual');
  for (const url of ['confirm_url', 'webhook_url'] as const) {
    if (r[url] !== undefined && (typeof r[url] !== 'string' || !/^https?:\/\//.test(r[url]))) throw bad(`${url} must be an http(s) URL`);
  }
  if (r['outcome'] !== undefined && (typeof r['outcome'] !== 'string' || !OUTCOMES.has(r['outcome']))) throw bad('outcome must be paid, failed or abandoned');
  // Not isAmount (positive): 0 is a buyer who spends no time in the window, as V1's window takes it
  // (the drop draws floor(random * max), 0 about once in a thousand windows: attack round 23B's 400s).
  const delay = r['buyer_delay_ms'];
  if (delay !== undefined && !(Number.isSafeInteger(delay) && (delay as number) >= 0)) throw bad('buyer_delay_ms must be a non-negative integer');
  if (r['webhook_version'] !== undefined && r['webhook_version'] !== '2024-04-25' && r['webhook_version'] !== '2024-01-01') {
    throw bad('webhook_version must be 2024-04-25 or 2024-01-01');
  }
  for (const s of ['currency', 'pg_provider', 'store_id'] as const) {
    if (r[s] !== undefined && (typeof r[s] !== 'string' || r[s] === '')) throw bad(`${s} must be a non-empty string`);
  }
  if (r['confirm_body'] !== undefined && (typeof r['confirm_body'] !== 'object' || r['confirm_body'] === null || Array.isArray(r['confirm_body']))) {
    throw bad('confirm_body must be a JSON object');
  }
  const out = { ...r } as unknown as V2PaymentWindowRequest;
  if (r['faults'] !== undefined) out.faults = parseFaults(r['faults'], 'faults');
  return out;
}
