/**
 * Public shapes of the PortOne V1 simulator: payments as `GET /payments/{imp_uid}` shows them, the
 * faults it can inject, the payment window request, and the ledger tests check invariants against.
 */

/** V1 payment statuses. */
export type SimPaymentStatus = 'ready' | 'paid' | 'cancelled' | 'failed';

/** One entry of a payment's `cancel_history`, as V1 reports it. */
export interface SimCancelHistoryEntry {
  pg_tid: string;
  amount: number;
  /** Unix seconds. */
  cancelled_at: number;
  reason: string;
  cancellation_id: string;
}

/**
 * A payment as the simulator's `GET /payments/{imp_uid}` returns it (a subset of V1's fields). A V2
 * attempt is shown the same way, with `imp_uid` = `v2.<transactionId>` (see v2.ts).
 */
export interface SimPayment {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  cancel_amount: number;
  currency: string;
  status: SimPaymentStatus;
  fail_reason: string | null;
  cancel_reason: string | null;
  /** Unix seconds; 0 when not reached. */
  started_at: number;
  paid_at: number;
  failed_at: number;
  cancelled_at: number;
  pay_method: string | null;
  pg_provider: string | null;
  pg_tid: string | null;
  cancel_history: SimCancelHistoryEntry[];
}

/** One page of `GET /payments/findAll/{merchant_uid}`; `previous`/`next` are page numbers, 0 = none. */
export interface SimPaymentPage {
  total: number;
  previous: number;
  next: number;
  list: SimPayment[];
}

/**
 * Faults and delivery settings. Set globally (`PUT /sim/faults`, `setFaults`) or per payment window
 * request; a per-request value overrides the global one for that payment, including its later webhooks.
 */
export interface Faults {
  /** Probability (0..1) that a webhook is never sent. */
  webhook_loss?: number;
  /** Extra copies of each webhook (0 = none). */
  webhook_duplicates?: number;
  /** Delay before a webhook's first attempt. */
  webhook_delay_ms?: number;
  /** Hold a webhook back and deliver it right after the next webhook of the same payment. */
  webhook_reorder?: boolean;
  /** A held-back webhook is delivered anyway after this long if no other one comes. Default 30000. */
  webhook_reorder_max_hold_ms?: number;
  /** The webhook's first attempt completes before the payment window call answers. */
  webhook_before_return?: boolean;
  /** Body encoding of webhooks (a PortOne console setting). Default `json`. */
  webhook_format?: 'json' | 'form';
  /** Retries of a webhook answered 0 (no answer) or 5xx. Default 5. */
  webhook_retries?: number;
  /** Spacing of webhook retries. Default 60000 (PortOne's one minute). */
  webhook_retry_ms?: number;
  /** How long one webhook attempt waits for the merchant's answer. Default 30000. */
  webhook_timeout_ms?: number;
  /** With outcome `paid`: the PG first reports `failed`, and the payment turns `paid` this much later. */
  failed_then_paid_ms?: number;
  /** Added latency of every REST call. */
  rest_latency_ms?: number;
  /** Probability (0..1) that a REST call answers 503. */
  rest_failure_rate?: number;
  /** Every REST call answers 503. */
  rest_down?: boolean;
  /** The next this many V1 cancel requests (`POST /payments/cancel`) answer 503 and cancel nothing. */
  cancel_failures?: number;
  /** How long PortOne waits for the merchant's confirm answer. Default 5000. */
  confirm_timeout_ms?: number;
  /**
   * V2 manual confirmation: PortOne decides at once (the payment is paid or failed, its webhook sent)
   * but its answer to `POST /payments/{id}/confirm` leaves this much later (a merchant that gives up
   * earlier must ask PortOne what happened).
   */
  manual_confirm_latency_ms?: number;
  /**
   * V2 manual confirmation: PortOne answers `POST /payments/{id}/confirm` with this error type (409),
   * e.g. `ALREADY_PAID_OR_WAITING`, and decides nothing: the payment stays as it was.
   */
  manual_confirm_refusal?: string;
}

/** Outcome the simulated buyer and PG produce once the merchant approved the confirm. */
export type PaymentOutcome = 'paid' | 'failed' | 'abandoned';

/** `POST /sim/v1/payments`: the buyer opens the payment window. */
export interface PaymentWindowRequest {
  merchant_uid: string;
  amount: number;
  /** Omitted: the payment proceeds without a confirm call (PGs that cannot use confirm). */
  confirm_url?: string;
  /** Omitted: the simulator's default notice URL, if any; otherwise no webhook. */
  notice_url?: string;
  /** Default `paid`. */
  outcome?: PaymentOutcome;
  /** Time the buyer takes after the merchant approved, before the PG answers. Default 0. */
  buyer_delay_ms?: number;
  faults?: Faults;
  currency?: string;
  pay_method?: string;
  pg_provider?: string;
  /**
   * Fields merged over the confirm body `{imp_uid, merchant_uid, amount}`; a field set to null is
   * left out (e.g. `{amount: null}` models the old documentation's body without `amount`).
   */
  confirm_body?: Record<string, unknown>;
}

/** What the merchant's confirm endpoint answered. */
export interface ConfirmExchange {
  /** HTTP status, or 0 when PortOne got no answer (timeout, connection refused). */
  status: number;
  latency_ms: number;
  /** The parsed JSON body, the raw text when it is not JSON, or null. */
  body: unknown;
  timed_out: boolean;
}

/** Answer of the payment window: the payment in its final status, and the confirm exchange. */
export interface PaymentWindowResult {
  payment: SimPayment;
  /** Null when no confirm call was made (no confirm_url, or the prepared amount did not match). */
  confirm: ConfirmExchange | null;
}

/** A confirm call, as the ledger records it. */
export interface ConfirmLedgerEntry {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  /** 0 when no answer came in time. */
  http_status: number;
  latency_ms: number;
  /** The merchant's `reason`, if its body had one. */
  reason: string | null;
  timed_out: boolean;
  /** RFC 3339. */
  at: string;
}

/** A webhook delivery attempt (or a lost webhook), as the ledger records it. */
export interface WebhookLedgerEntry {
  imp_uid: string;
  merchant_uid: string;
  /** The status the webhook body claimed (it may lie, see `sendWebhook`). */
  status: string;
  /** The merchant answered 2xx. */
  delivered: boolean;
  /** HTTP status; 0 when no answer; null when the webhook was lost (never sent). */
  http_status: number | null;
  /** 1 for the first attempt, 2.. for retries; 0 for a lost webhook. */
  attempt: number;
  /** 0 for the original, 1.. for the duplicates `webhook_duplicates` adds. */
  copy: number;
  lost: boolean;
  /** RFC 3339. */
  at: string;
}

/** A cancel request (REST API or console), as the ledger records it. */
export interface CancelLedgerEntry {
  imp_uid: string | null;
  merchant_uid: string | null;
  /** The amount refunded (on success) or requested (null = the whole balance). */
  amount: number | null;
  checksum: number | null;
  reason: string | null;
  ok: boolean;
  /** Why PortOne refused it, when it did. */
  message: string | null;
  source: 'api' | 'console';
  /** RFC 3339. */
  at: string;
}

/** Everything the simulator did, for invariant checks. Entries are in the order things happened. */
export interface Ledger {
  payments: SimPayment[];
  confirms: ConfirmLedgerEntry[];
  webhooks: WebhookLedgerEntry[];
  cancels: CancelLedgerEntry[];
}

/** Narrows a ledger to one payment or one order. */
export interface LedgerFilter {
  imp_uid?: string;
  merchant_uid?: string;
}

/** Options of `startSimulator`. */
export interface SimulatorOptions {
  /** 0 (default) = a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Expected `imp_key`; if unset (with impSecret), any credentials are accepted. */
  impKey?: string;
  impSecret?: string;
  /** Lifetime of access tokens. Default 1800 (PortOne's 30 minutes). */
  tokenTtlSeconds?: number;
  /**
   * Where the simulator reads the time (epoch ms) for tokens' expiry and payments' timestamps;
   * default the system's. Tests pass a clock they move forward instead of waiting a token out.
   */
  clock?: { now(): number };
  /** Initial global faults. */
  faults?: Faults;
  /** Notice URL used when a payment window request has none (PortOne's console-level setting). */
  noticeUrl?: string;
  /** Log every request with pino (same as `logLevel: 'info'`). Default false: too costly during a drop. */
  logger?: boolean;
  /** pino level; overrides `logger`. `warn` logs errors without per-request lines. */
  logLevel?: SimLogLevel;
  /** V2 API secret (`Authorization: PortOne <secret>`); if unset, any secret is accepted. */
  v2ApiSecret?: string;
  /** The V2 store. Default `store-simulator`. */
  storeId?: string;
  /** V2 Standard Webhooks secret (`whsec_...`) confirm calls and webhooks are signed with. Default: a random one. */
  webhookSecret?: string;
  /** V2 webhook URL used when a V2 payment window request has none (the console's setting). */
  v2WebhookUrl?: string;
}

/** Log levels the simulator accepts. */
export type SimLogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';
