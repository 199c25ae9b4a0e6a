/**
 * What the simulator does, independent of HTTP: PortOne's REST behaviour (tokens, payments, cancel,
 * prepare), the payment window (confirm call, PG outcome, webhooks) and the simulator's controls.
 * The fastify routes in `app.ts` and the library API in `index.ts` both call into this.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { SimError } from './errors.ts';
import { MESSAGES } from './messages.ts';
import { SimState, type PaymentRecord } from './state.ts';
import type {
  ConfirmExchange,
  Faults,
  Ledger,
  LedgerFilter,
  PaymentOutcome,
  PaymentWindowRequest,
  PaymentWindowResult,
  SimPayment,
  SimPaymentPage,
  SimPaymentStatus,
  SimulatorOptions,
} from './types.ts';
import { parseFaults, parseOptionalAmount, parsePaymentWindowRequest, parseStatus } from './validate.ts';
import { dispatchWebhook } from './webhooks.ts';
import { post } from './http-post.ts';
import {
  confirmBody as v2ConfirmBody, newPaymentToken, newTransactionId, newWebhookId, newWebhookSecret, parseV2PaymentWindowRequest,
  signedHeaders, statusChangedAt, V2_STATUS_OF, v2Failure, v2PaymentJson, webhookBody as v2WebhookBody, webhookTypeOf, type V2Failure, type V2PaymentWindowRequest,
} from './v2.ts';

/** Answer of a V2 payment window: the attempt (V1-shaped and as V2 shows it), the confirm call, the browser's token. */
export interface V2PaymentWindowResult {
  payment: SimPayment;
  v2: Record<string, unknown>;
  confirm: ConfirmExchange | null;
  /** Manual confirmation: what the browser posts to the merchant (null for the confirm-webhook flow). */
  payment_token: string | null;
  transaction_id: string;
}

/** A V2 REST answer: the body with 200, or PortOne's `{type, message}` with its status. */
export type V2RestResult = { ok: true; body: unknown } | { ok: false; failure: V2Failure };

const DEFAULT_TOKEN_TTL_SECONDS = 1800;
/** Payments per page of `GET /payments/findAll` (PortOne pages by 20). */
export const FIND_ALL_PAGE_SIZE = 20;
const DEFAULT_CONFIRM_TIMEOUT_MS = 5000;
/** Expired tokens are swept once the table grows past this. */
const TOKEN_SWEEP_THRESHOLD = 10_000;

/** `POST /users/getToken`'s `response`. */
export interface TokenResponse {
  access_token: string;
  expired_at: number;
  now: number;
}

/** A PortOne business answer: `code` 0 with a response, or `code` 1 with a Korean message. */
export type RestResult<T> = { ok: true; response: T } | { ok: false; message: string };

/** Body of `POST /payments/cancel` as PortOne documents it. */
export interface RestCancelRequest {
  imp_uid?: unknown;
  merchant_uid?: unknown;
  amount?: unknown;
  checksum?: unknown;
  reason?: unknown;
  enable_webhook?: unknown;
}

/** Options of a status change made behind PortOne's back (the PG changing its mind). */
export interface SetPaymentStatusOptions {
  /** fail_reason when the new status is `failed`. */
  failReason?: string;
  /** Also send a webhook with the new status. Default false. */
  webhook?: boolean;
}

/** The index of the first record of `order` (sorted by paid_at) paid after `at` (unix seconds). */
function upperBound(order: readonly PaymentRecord[], at: number): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order[mid]!.payment.paid_at <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function clonePayment(p: SimPayment): SimPayment {
  return { ...p, cancel_history: p.cancel_history.map((h) => ({ ...h })) };
}

/** A PortOne REST request as the simulator received it (see SimulatorEngine.restListener). */
export interface RestCall {
  method: string;
  /** Path and query, e.g. `/payments/imp_123`. */
  url: string;
}

/** The simulator's behaviour. One instance per running simulator. */
export class SimulatorEngine {
  readonly #impKey: string | undefined;
  readonly #impSecret: string | undefined;
  readonly #tokenTtlMs: number;
  readonly #clock: { now(): number };
  readonly #defaultNoticeUrl: string | undefined;
  readonly #v2ApiSecret: string | undefined;
  readonly #storeId: string;
  readonly #webhookSecret: string;
  readonly #defaultV2WebhookUrl: string | undefined;
  #faults: Faults;
  #state = new SimState();

  constructor(opts: SimulatorOptions = {}) {
    const ttl = opts.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new SimError('INVALID_REQUEST', 'tokenTtlSeconds must be a positive number');
    this.#impKey = opts.impKey;
    this.#impSecret = opts.impSecret;
    this.#tokenTtlMs = ttl * 1000;
    this.#clock = opts.clock ?? { now: () => Date.now() };
    this.#defaultNoticeUrl = opts.noticeUrl;
    this.#faults = parseFaults(opts.faults ?? {});
    this.#v2ApiSecret = opts.v2ApiSecret;
    this.#storeId = opts.storeId ?? 'store-simulator';
    this.#webhookSecret = opts.webhookSecret ?? newWebhookSecret();
    this.#defaultV2WebhookUrl = opts.v2WebhookUrl;
  }

  /** The simulator's time in whole seconds, as PortOne's timestamps are. */
  #unixNow(): number {
    return Math.floor(this.#clock.now() / 1000);
  }

  /** The V2 Standard Webhooks secret confirm calls and webhooks are signed with. */
  get webhookSecret(): string {
    return this.#webhookSecret;
  }

  /** The V2 store this simulator plays. */
  get storeId(): string {
    return this.#storeId;
  }

  // ---- faults -------------------------------------------------------------------------------

  /** The global faults (a copy). */
  get faults(): Faults {
    return { ...this.#faults };
  }

  /** Replaces the global faults; throws SimError INVALID_REQUEST on an unknown or invalid fault. */
  /** Whether this V1 cancel request is one `cancel_failures` fails (counted down as they come). */
  takeCancelFailure(): boolean {
    const left = this.#faults.cancel_failures ?? 0;
    if (left <= 0) return false;
    this.#faults = { ...this.#faults, cancel_failures: left - 1 };
    return true;
  }

  setFaults(faults: unknown): Faults {
    this.#faults = parseFaults(faults);
    return this.faults;
  }

  /**
   * In-process only (no HTTP control): called with each PortOne REST request before it is answered,
   * which waits for what it returns. A fault harness uses it to act at the moment a merchant asks
   * (e.g. freeze the merchant's process while it waits for the answer).
   */
  restListener: ((call: RestCall) => void | Promise<void>) | null = null;

  /** Faults that apply to a payment now: global ones, overridden by its own. */
  #faultsFor(record: PaymentRecord): Faults {
    return { ...this.#faults, ...record.faults };
  }

  // ---- tokens -------------------------------------------------------------------------------

  /** `POST /users/getToken`: a new token, or null when the credentials are refused. */
  issueToken(impKey: unknown, impSecret: unknown): TokenResponse | null {
    if (typeof impKey !== 'string' || typeof impSecret !== 'string' || impKey === '' || impSecret === '') return null;
    if (this.#impKey !== undefined && impKey !== this.#impKey) return null;
    if (this.#impSecret !== undefined && impSecret !== this.#impSecret) return null;
    const state = this.#state;
    const nowMs = this.#clock.now();
    if (state.tokens.size > TOKEN_SWEEP_THRESHOLD) {
      for (const [token, expiresAt] of state.tokens) if (expiresAt <= nowMs) state.tokens.delete(token);
    }
    const token = randomBytes(20).toString('hex');
    const expiresAtMs = nowMs + this.#tokenTtlMs;
    state.tokens.set(token, expiresAtMs);
    return { access_token: token, expired_at: Math.floor(expiresAtMs / 1000), now: Math.floor(nowMs / 1000) };
  }

  /**
   * Whether an `Authorization` header carries a token this simulator issued and that has not expired:
   * `Bearer <token>` or the token bare, as PortOne V1 takes it (iamport's own clients send it bare).
   */
  isAuthorized(authorization: string | undefined): boolean {
    if (authorization === undefined) return false;
    const token = authorization.startsWith('Bearer ') ? authorization.slice('Bearer '.length).trim() : authorization.trim();
    const expiresAt = this.#state.tokens.get(token);
    return expiresAt !== undefined && this.#clock.now() < expiresAt;
  }

  // ---- REST: payments -----------------------------------------------------------------------

  /** A copy of the payment (V1) or attempt (V2, `v2.<transactionId>`), or null. */
  getPayment(impUid: string): SimPayment | null {
    const record = this.#state.payments.get(impUid);
    return record === undefined ? null : clonePayment(record.payment);
  }

  /** `GET /payments/{imp_uid}` of V1 REST: V2 attempts are not V1 payments. */
  getV1Payment(impUid: string): SimPayment | null {
    const record = this.#state.payments.get(impUid);
    return record === undefined || record.v2 !== undefined ? null : clonePayment(record.payment);
  }

  /** `GET /payments/find/{merchant_uid}[/{status}]`: the latest payment of the order (with that status). */
  findPayment(merchantUid: string, status?: string): SimPayment | null {
    const records = this.#state.byMerchantUid.get(merchantUid) ?? [];
    for (let i = records.length - 1; i >= 0; i--) {
      const record = records[i];
      if (record !== undefined && record.v2 === undefined && (status === undefined || record.payment.status === status)) {
        return clonePayment(record.payment);
      }
    }
    return null;
  }

  /**
   * `GET /payments/findAll/{merchant_uid}[/{payment_status}]`: every payment attempt of an order, a
   * page of `FIND_ALL_PAGE_SIZE` at a time, newest first (`sorting=-started`, PortOne's default) or
   * oldest first (`sorting=started`). `previous` and `next` are page numbers, 0 when there is none.
   * Null when the order has no payment in that status (PortOne answers 404).
   */
  findAllPayments(merchantUid: string, status: string | undefined, page: number, sorting: string | undefined): SimPaymentPage | null {
    // V1's own payments: V2 attempts of the same id are not V1's to list (as `find` and `GET /payments/{imp_uid}`).
    const records = (this.#state.byMerchantUid.get(merchantUid) ?? []).filter((r) => r.v2 === undefined && (status === undefined || r.payment.status === status));
    if (records.length === 0) return null;
    const ordered = sorting === 'started' ? records : [...records].reverse();
    const pages = Math.ceil(ordered.length / FIND_ALL_PAGE_SIZE);
    const at = Math.min(Math.max(1, Math.floor(page) || 1), pages);
    return {
      total: ordered.length,
      previous: at > 1 ? at - 1 : 0,
      next: at < pages ? at + 1 : 0,
      list: ordered.slice((at - 1) * FIND_ALL_PAGE_SIZE, at * FIND_ALL_PAGE_SIZE).map((r) => clonePayment(r.payment)),
    };
  }

  /**
   * `GET /payments/status/{payment_status}?from=&to=&page=&limit=&sorting=`: the store's V1 payments in
   * that status (`all`: any) whose status time (paid_at for paid, cancelled_at for cancelled,
   * failed_at for failed, started_at otherwise: PortOne's "결제건의 최종 status에 따라 다른 검색기준")
   * lies in [from, to] (unix seconds; absent: unbounded), sorted as PortOne does by `sorting`: started_at
   * (`started`), paid_at (`paid`) or the last change (`updated`, every status change and cancel moves
   * it), ascending, or descending with a leading `-` (default `-started`). Not by the status time: a
   * merchant paging the cancelled list by cancel time must ask `updated`, as with PortOne. `limit` 1-100
   * (default 20). `previous` and `next` are page numbers, 0 when there is none. Null for an unknown status.
   */
  listPayments(status: string, from: number | null, to: number | null, page: number, limit: number, sorting: string | undefined): SimPaymentPage | null {
    if (status !== 'all' && status !== 'ready' && status !== 'paid' && status !== 'cancelled' && status !== 'failed') return null;
    const timeOf = (p: SimPayment) => (p.status === 'paid' ? p.paid_at : p.status === 'cancelled' ? p.cancelled_at : p.status === 'failed' ? p.failed_at : p.started_at);
    const size = Math.min(100, Math.max(1, Math.floor(limit) || 20));
    const matching: SimPayment[] = [];
    // Paid ones: the window of the payments in paid order, already sorted; others: every payment.
    const paidOrder = this.#state.paidOrder;
    const windowed = status === 'paid';
    const candidates = windowed
      ? paidOrder.slice(from === null ? 0 : upperBound(paidOrder, from - 1), to === null ? paidOrder.length : upperBound(paidOrder, to))
      : this.#state.payments.values();
    for (const record of candidates) {
      const p = record.payment;
      if (record.v2 !== undefined || (status !== 'all' && p.status !== status)) continue;
      const at = timeOf(p);
      if ((from !== null && at < from) || (to !== null && at > to)) continue;
      matching.push(p);
    }
    const key = (sorting ?? '-started').replace(/^-/, '');
    const ascending = !(sorting ?? '-started').startsWith('-');
    const sortOf = (p: SimPayment): number =>
      key === 'paid' ? p.paid_at
        : key === 'updated' ? Math.max(p.started_at, p.paid_at, p.failed_at, p.cancelled_at, p.cancel_history.at(-1)?.cancelled_at ?? 0)
          : p.started_at;
    // The paid window is already in paid order (stable: payments paid in one second keep the order they were paid in).
    if (!(windowed && key === 'paid')) matching.sort((a, b) => sortOf(a) - sortOf(b));
    if (!ascending) matching.reverse();
    const at = Math.max(1, Math.floor(page) || 1);
    const pages = Math.ceil(matching.length / size);
    return {
      total: matching.length,
      previous: at > 1 ? Math.min(at - 1, pages) : 0,
      next: at < pages ? at + 1 : 0,
      list: matching.slice((at - 1) * size, at * size).map((p) => clonePayment(p)),
    };
  }

  /**
   * `POST /payments/cancel`: partial or full refund of a paid payment. Refused (and nothing changes)
   * when the checksum differs from the refundable balance, when the amount exceeds it, or when the
   * payment is not paid.
   */
  cancelViaApi(req: RestCancelRequest): RestResult<SimPayment> {
    const state = this.#state;
    const impUid = typeof req.imp_uid === 'string' && req.imp_uid !== '' ? req.imp_uid : null;
    const merchantUid = typeof req.merchant_uid === 'string' && req.merchant_uid !== '' ? req.merchant_uid : null;
    const checksum = typeof req.checksum === 'number' ? req.checksum : null;
    const reason = typeof req.reason === 'string' ? req.reason : null;
    const requested = typeof req.amount === 'number' ? req.amount : null;
    let record: PaymentRecord | undefined;
    if (impUid !== null) record = state.payments.get(impUid);
    else if (merchantUid !== null) record = state.byMerchantUid.get(merchantUid)?.findLast((r) => r.v2 === undefined);
    if (record?.v2 !== undefined) record = undefined;
    const refuse = (message: string): RestResult<SimPayment> => {
      state.cancels.push({
        imp_uid: record?.payment.imp_uid ?? impUid,
        merchant_uid: record?.payment.merchant_uid ?? merchantUid,
        amount: requested,
        checksum,
        reason,
        ok: false,
        message,
        source: 'api',
        at: new Date().toISOString(),
      });
      return { ok: false, message };
    };

    if (record !== undefined && merchantUid !== null && record.payment.merchant_uid !== merchantUid) {
      return refuse(MESSAGES.cancelUidMismatch);
    }
    if (record === undefined) return refuse(MESSAGES.cancelTargetNotFound);
    if (req.amount !== undefined && req.amount !== null && !(Number.isSafeInteger(req.amount) && (req.amount as number) > 0)) {
      return refuse(MESSAGES.cancelAmountInvalid);
    }
    const p = record.payment;
    if (p.status === 'cancelled') return refuse(MESSAGES.alreadyCancelled);
    if (p.status !== 'paid') return refuse(MESSAGES.notPaid);
    const balance = p.amount - p.cancel_amount;
    if (req.checksum !== undefined && req.checksum !== null && checksum !== balance) {
      return refuse(MESSAGES.checksumMismatch(Number(req.checksum), balance));
    }
    const refund = requested ?? balance;
    if (refund > balance) return refuse(MESSAGES.cancelAmountExceeds(refund, balance));

    const cancellationId = this.#applyCancel(record, refund, reason ?? '');
    state.cancels.push({
      imp_uid: p.imp_uid,
      merchant_uid: p.merchant_uid,
      amount: refund,
      checksum,
      reason,
      ok: true,
      message: null,
      source: 'api',
      at: new Date().toISOString(),
    });
    // PortOne's cancel API sends no webhook unless asked to.
    if (req.enable_webhook === true) void this.#sendStatusWebhook(record, 'cancelled', { cancellation_id: cancellationId });
    return { ok: true, response: clonePayment(p) };
  }

  /** Refunds `refund` (already checked against the balance); returns the cancellation id. */
  #applyCancel(record: PaymentRecord, refund: number, reason: string): string {
    const p = record.payment;
    const now = this.#unixNow();
    const cancellationId = `cancel_${randomBytes(8).toString('hex')}`;
    p.cancel_amount += refund;
    p.cancel_reason = reason;
    p.cancel_history.push({
      pg_tid: p.pg_tid ?? '',
      amount: refund,
      cancelled_at: now,
      reason,
      cancellation_id: cancellationId,
    });
    // V1 keeps a partially cancelled payment `paid` (with cancel_amount > 0); only a full one is `cancelled`.
    if (p.cancel_amount >= p.amount) {
      p.status = 'cancelled';
      p.cancelled_at = now;
    }
    return cancellationId;
  }

  /** `POST /payments/prepare`: registers the amount a payment window for this order must carry. */
  prepare(merchantUid: unknown, amount: unknown): RestResult<{ merchant_uid: string; amount: number }> | null {
    if (typeof merchantUid !== 'string' || merchantUid === '' || !Number.isSafeInteger(amount) || (amount as number) <= 0) {
      return null;
    }
    const state = this.#state;
    if (state.prepared.has(merchantUid)) return { ok: false, message: MESSAGES.prepareExists };
    state.prepared.set(merchantUid, amount as number);
    return { ok: true, response: { merchant_uid: merchantUid, amount: amount as number } };
  }

  /** `GET /payments/prepare/{merchant_uid}`. */
  getPrepared(merchantUid: string): { merchant_uid: string; amount: number } | null {
    const amount = this.#state.prepared.get(merchantUid);
    return amount === undefined ? null : { merchant_uid: merchantUid, amount };
  }

  // ---- the payment window ---------------------------------------------------------------------

  /**
   * Plays the buyer and the PG for one payment: issues an imp_uid, calls the merchant's confirm_url,
   * and applies the outcome. Resolves once the payment has the status the buyer returns with.
   */
  async pay(input: PaymentWindowRequest): Promise<PaymentWindowResult> {
    const req = parsePaymentWindowRequest(input);
    const state = this.#state;
    const record = this.#createPayment(state, req);
    const faults = this.#faultsFor(record);

    const prepared = state.prepared.get(req.merchant_uid);
    if (prepared !== undefined && prepared !== req.amount) {
      // PortOne stops a tampered amount before the window opens: no confirm call, no PG.
      this.#markFailed(record, MESSAGES.prepareMismatch(prepared, req.amount));
      return { payment: clonePayment(record.payment), confirm: null };
    }

    let confirm: ConfirmExchange | null = null;
    if (req.confirm_url !== undefined) {
      confirm = await this.#callConfirm(state, record, req.confirm_url, req.confirm_body, faults.confirm_timeout_ms ?? DEFAULT_CONFIRM_TIMEOUT_MS);
      if (confirm.status !== 200) {
        // A refusal, an error or a timeout all stop the payment. An ordinary failure sends no webhook.
        this.#markFailed(record, MESSAGES.confirmStopped(reasonOf(confirm.body)));
        return { payment: clonePayment(record.payment), confirm };
      }
    }

    if (!(await state.pause(req.buyer_delay_ms ?? 0))) return { payment: clonePayment(record.payment), confirm };
    await this.#applyOutcome(state, record, req.outcome ?? 'paid', faults);
    return { payment: clonePayment(record.payment), confirm };
  }

  /** The PG's answer once the payment may proceed. V2 also sends a webhook for a failure; V1 does not. */
  async #applyOutcome(state: SimState, record: PaymentRecord, outcome: PaymentOutcome, faults: Faults): Promise<void> {
    switch (outcome) {
      case 'paid': {
        const flipAfter = faults.failed_then_paid_ms ?? 0;
        if (flipAfter > 0) {
          // Some PGs report a failure first and approve later: the buyer sees a failure, the money moves.
          this.#markFailed(record, MESSAGES.pgDeclined);
          if (record.v2 !== undefined) void this.#sendStatusWebhook(record, 'failed');
          state.track(this.#turnPaidLater(state, record, flipAfter), record.payment.merchant_uid);
        } else {
          this.#markPaid(record);
          const webhook = this.#sendStatusWebhook(record, 'paid');
          if (faults.webhook_before_return === true) await webhook;
        }
        break;
      }
      case 'failed':
        this.#markFailed(record, MESSAGES.pgDeclined);
        if (record.v2 !== undefined) void this.#sendStatusWebhook(record, 'failed');
        break;
      case 'abandoned':
        // The buyer closed the window: the payment stays `ready` and nothing is sent.
        break;
    }
  }

  #createPayment(state: SimState, req: PaymentWindowRequest, key?: string): PaymentRecord {
    let impUid: string;
    do {
      impUid = key ?? `imp_${String(randomInt(0, 1e12)).padStart(12, '0')}`;
    } while (key === undefined && state.payments.has(impUid));
    const payment: SimPayment = {
      imp_uid: impUid,
      merchant_uid: req.merchant_uid,
      amount: req.amount,
      cancel_amount: 0,
      currency: req.currency ?? 'KRW',
      status: 'ready',
      fail_reason: null,
      cancel_reason: null,
      started_at: this.#unixNow(),
      paid_at: 0,
      failed_at: 0,
      cancelled_at: 0,
      pay_method: req.pay_method ?? 'card',
      pg_provider: req.pg_provider ?? 'html5_inicis',
      pg_tid: null,
      cancel_history: [],
    };
    const record: PaymentRecord = {
      payment,
      noticeUrl: req.notice_url ?? this.#defaultNoticeUrl,
      faults: req.faults ?? {},
    };
    state.payments.set(impUid, record);
    const list = state.byMerchantUid.get(req.merchant_uid);
    if (list === undefined) state.byMerchantUid.set(req.merchant_uid, [record]);
    else list.push(record);
    return record;
  }

  /**
   * PortOne's confirm call: POSTs the payment's confirm body (V1's `{imp_uid, merchant_uid, amount}`,
   * or V2's signed `Transaction.Confirm`) with `override` merged over it (a null removes a field),
   * within `timeoutMs`, and records it in the ledger with the merchant's reason (V1 `reason`, V2
   * `errorMessage`).
   */
  async #callConfirm(
    state: SimState,
    record: PaymentRecord,
    url: string,
    override: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<ConfirmExchange> {
    const p = record.payment;
    const a = record.v2;
    const body: Record<string, unknown> = a === undefined ? { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, amount: p.amount } : v2ConfirmBody(p, a);
    if (override !== undefined) {
      for (const [key, value] of Object.entries(override)) {
        if (value === null) delete body[key];
        else body[key] = value;
      }
    }
    const text = JSON.stringify(body);
    const signature = a === undefined ? {} : signedHeaders(this.#webhookSecret, newWebhookId(), text);
    const started = performance.now();
    let status = 0;
    let answer: unknown = null;
    let timedOut = false;
    try {
      // The deadline covers the body too: a 200 whose body comes late is a late answer.
      const res = await post(url, { 'content-type': 'application/json', ...signature }, text, timeoutMs, state.signal);
      status = res.status;
      answer = parseBody(res.text);
    } catch (err) {
      timedOut = err instanceof Error && err.name === 'TimeoutError';
    }
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    state.confirms.push({
      imp_uid: p.imp_uid,
      merchant_uid: p.merchant_uid,
      amount: p.amount,
      http_status: status,
      latency_ms: latencyMs,
      reason: a === undefined ? reasonOf(answer) : errorMessageOf(answer),
      timed_out: timedOut,
      at: new Date().toISOString(),
    });
    return { status, latency_ms: latencyMs, body: answer, timed_out: timedOut };
  }

  async #turnPaidLater(state: SimState, record: PaymentRecord, ms: number): Promise<void> {
    if (!(await state.pause(ms))) return;
    // V2 pays a paymentId once: an attempt the buyer replaced by a new one meanwhile stays failed.
    if (record.v2 !== undefined && this.#v2Latest(record.payment.merchant_uid) !== record) return;
    if (record.payment.status !== 'failed') return;
    this.#markPaid(record);
    await this.#sendStatusWebhook(record, 'paid');
  }

  #markPaid(record: PaymentRecord): void {
    const p = record.payment;
    p.status = 'paid';
    p.paid_at = this.#unixNow();
    p.pg_tid ??= `pg_${randomBytes(8).toString('hex')}`;
    // Kept in paid-time order (a clock set back in a test puts it before later ones).
    const order = this.#state.paidOrder;
    order.splice(upperBound(order, p.paid_at), 0, record);
  }

  #markFailed(record: PaymentRecord, reason: string): void {
    const p = record.payment;
    p.status = 'failed';
    p.fail_reason = reason;
    p.failed_at = this.#unixNow();
  }

  /** Sends a webhook about `record`; resolves after its first attempt (see dispatchWebhook). */
  #sendStatusWebhook(record: PaymentRecord, status: string, extra: Record<string, unknown> = {}): Promise<void> {
    if (record.noticeUrl === undefined) return Promise.resolve();
    const p = record.payment;
    const a = record.v2;
    if (a !== undefined) {
      const { cancellation_id: cancellationId, ...rest } = extra;
      const id = newWebhookId();
      const secret = this.#webhookSecret;
      return dispatchWebhook(this.#state, {
        impUid: p.imp_uid,
        merchantUid: p.merchant_uid,
        noticeUrl: record.noticeUrl,
        status,
        body: v2WebhookBody(p, a, webhookTypeOf(p, status as SimPaymentStatus), {
          ...(typeof cancellationId === 'string' ? { cancellationId } : {}), ...rest,
        }),
        faults: this.#faultsFor(record),
        sign: (body) => signedHeaders(secret, id, body),
      });
    }
    return dispatchWebhook(this.#state, {
      impUid: p.imp_uid,
      merchantUid: p.merchant_uid,
      noticeUrl: record.noticeUrl,
      status,
      body: { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status, ...extra },
      faults: this.#faultsFor(record),
    });
  }

  // ---- PortOne V2 ------------------------------------------------------------------------------

  /** Whether an `Authorization` header carries `PortOne <secret>` with our V2 secret (any, when none is set). */
  isV2Authorized(authorization: string | undefined): boolean {
    if (authorization === undefined || !authorization.startsWith('PortOne ')) return false;
    const secret = authorization.slice('PortOne '.length).trim();
    return secret !== '' && (this.#v2ApiSecret === undefined || secret === this.#v2ApiSecret);
  }

  /** The latest attempt of V2 payment `paymentId`. */
  #v2Latest(paymentId: string): PaymentRecord | undefined {
    return this.#state.byMerchantUid.get(paymentId)?.findLast((r) => r.v2 !== undefined);
  }

  /** `GET /payments/{paymentId}` (V2). */
  v2GetPayment(paymentId: string): V2RestResult {
    const record = this.#v2Latest(paymentId);
    if (record === undefined) return { ok: false, failure: v2Failure(404, 'PAYMENT_NOT_FOUND', MESSAGES.paymentNotFound) };
    return { ok: true, body: v2PaymentJson(record.payment, record.v2!) };
  }

  /**
   * `GET /payments?requestBody={page, filter}` (V2): the latest attempt of each V2 payment whose status
   * is in `filter.status` (absent: any) and whose status changed (`timestampType` STATUS_CHANGED_AT,
   * the default) or which was created (CREATED_AT) within [`from`, `until`], sorted by that time
   * (`sortOrder` ASC or DESC, the default), a page (`page.number` from 0, `page.size` default 10) at a time.
   */
  v2ListPayments(requestBody: unknown): V2RestResult {
    const invalid = (message: string): V2RestResult => ({ ok: false, failure: v2Failure(400, 'INVALID_REQUEST', message) });
    let input: Record<string, unknown>;
    try {
      input = (typeof requestBody === 'string' ? JSON.parse(requestBody) : {}) as Record<string, unknown>;
    } catch {
      return invalid('requestBody is not JSON');
    }
    if (typeof input !== 'object' || input === null) return invalid('requestBody is not a JSON object');
    const page = (input['page'] ?? {}) as Record<string, unknown>;
    const filter = (input['filter'] ?? {}) as Record<string, unknown>;
    const number = page['number'] === undefined ? 0 : Number(page['number']);
    const size = page['size'] === undefined ? 10 : Number(page['size']);
    if (!Number.isSafeInteger(number) || number < 0 || !Number.isSafeInteger(size) || size < 1 || size > 1000) return invalid('page is not valid');
    if (filter['storeId'] !== undefined && filter['storeId'] !== this.#storeId) return { ok: false, failure: v2Failure(403, 'FORBIDDEN', 'not your store') };
    const bound = (value: unknown): number | null | undefined => (value === undefined ? null : typeof value === 'string' && Number.isFinite(Date.parse(value)) ? Date.parse(value) : undefined);
    const from = bound(filter['from']);
    const until = bound(filter['until']);
    if (from === undefined || until === undefined) return invalid('from and until must be RFC 3339 date-times');
    const statuses = Array.isArray(filter['status']) ? new Set(filter['status'] as unknown[]) : null;
    const created = filter['timestampType'] === 'CREATED_AT';
    const timeOf = (p: SimPayment): number => (created ? p.started_at : statusChangedAt(p)) * 1000;
    // Asked for paid ones only (what the ledger sweep asks): those ever paid, up to `until` (a payment's
    // status changes after it is paid, never before). Otherwise every payment.
    const paidOnly = statuses !== null && [...statuses].every((x) => x === 'PAID' || x === 'PARTIAL_CANCELLED');
    const paidOrder = this.#state.paidOrder;
    const candidates = paidOnly ? paidOrder.slice(0, until === null ? paidOrder.length : upperBound(paidOrder, Math.floor(until / 1000))) : this.#state.payments.values();
    const latest = new Map<string, PaymentRecord>();
    for (const record of candidates) if (record.v2 !== undefined) latest.set(record.payment.merchant_uid, this.#v2Latest(record.payment.merchant_uid)!);
    const matching = [...latest.values()].filter((r) => {
      const at = timeOf(r.payment);
      return (statuses === null || statuses.has(V2_STATUS_OF(r.payment))) && (from === null || at >= from) && (until === null || at <= until);
    });
    const ascending = filter['sortOrder'] === 'ASC';
    matching.sort((a, b) => (ascending ? timeOf(a.payment) - timeOf(b.payment) : timeOf(b.payment) - timeOf(a.payment)));
    const items = matching.slice(number * size, (number + 1) * size).map((r) => v2PaymentJson(r.payment, r.v2!));
    return { ok: true, body: { items, page: { number, size, totalCount: matching.length } } };
  }

  /** `POST /payments/{paymentId}/pre-register` (V2): the amount a payment window for it must carry. */
  v2PreRegister(paymentId: string, body: Record<string, unknown>): V2RestResult {
    const amount = body['totalAmount'];
    if (!Number.isSafeInteger(amount) || (amount as number) <= 0) return { ok: false, failure: v2Failure(400, 'INVALID_REQUEST', 'totalAmount must be a positive integer') };
    if (body['storeId'] !== undefined && body['storeId'] !== this.#storeId) return { ok: false, failure: v2Failure(403, 'FORBIDDEN', 'not your store') };
    const state = this.#state;
    const existing = state.prepared.get(paymentId);
    if (this.#v2Latest(paymentId)?.payment.status === 'paid') return { ok: false, failure: v2Failure(409, 'ALREADY_PAID', 'already paid') };
    if (existing !== undefined && existing !== amount) return { ok: false, failure: v2Failure(400, 'INVALID_REQUEST', 'pre-registered with another amount') };
    state.prepared.set(paymentId, amount as number);
    return { ok: true, body: {} };
  }

  /**
   * `POST /payments/{paymentId}/cancel` (V2): refunds `amount` (default the whole balance). Refused
   * when `currentCancellableAmount` differs from the balance (V2's checksum), when the amount exceeds
   * it, or when the latest attempt is not paid. Sends a webhook unless `skipWebhook`.
   */
  v2Cancel(paymentId: string, body: Record<string, unknown>): V2RestResult {
    const state = this.#state;
    const record = this.#v2Latest(paymentId);
    const requested = typeof body['amount'] === 'number' ? body['amount'] : null;
    const checksum = typeof body['currentCancellableAmount'] === 'number' ? body['currentCancellableAmount'] : null;
    const reason = typeof body['reason'] === 'string' ? body['reason'] : null;
    const refuse = (status: number, type: string, message: string): V2RestResult => {
      state.cancels.push({
        imp_uid: record?.payment.imp_uid ?? null, merchant_uid: paymentId, amount: requested, checksum, reason,
        ok: false, message: `${type}: ${message}`, source: 'api', at: new Date().toISOString(),
      });
      return { ok: false, failure: v2Failure(status, type, message) };
    };
    if (record === undefined) return refuse(404, 'PAYMENT_NOT_FOUND', MESSAGES.paymentNotFound);
    if (reason === null || reason === '') return refuse(400, 'INVALID_REQUEST', 'reason is required');
    if (body['storeId'] !== undefined && body['storeId'] !== record.v2!.storeId) return refuse(403, 'FORBIDDEN', 'not your store');
    if (body['amount'] !== undefined && !(Number.isSafeInteger(body['amount']) && (body['amount'] as number) > 0)) return refuse(400, 'INVALID_REQUEST', MESSAGES.cancelAmountInvalid);
    const p = record.payment;
    if (p.status === 'cancelled') return refuse(409, 'PAYMENT_ALREADY_CANCELLED', MESSAGES.alreadyCancelled);
    if (p.status !== 'paid') return refuse(409, 'PAYMENT_NOT_PAID', MESSAGES.notPaid);
    const balance = p.amount - p.cancel_amount;
    if (body['currentCancellableAmount'] !== undefined && checksum !== balance) {
      return refuse(409, 'CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN', MESSAGES.checksumMismatch(Number(body['currentCancellableAmount']), balance));
    }
    const refund = requested ?? balance;
    if (refund > balance) return refuse(409, 'CANCEL_AMOUNT_EXCEEDS_CANCELLABLE_AMOUNT', MESSAGES.cancelAmountExceeds(refund, balance));
    const cancellationId = this.#applyCancel(record, refund, reason);
    state.cancels.push({
      imp_uid: p.imp_uid, merchant_uid: paymentId, amount: refund, checksum, reason, ok: true, message: null, source: 'api', at: new Date().toISOString(),
    });
    // #applyCancel turned it `cancelled` when nothing is left (TypeScript still has it `paid`).
    const after = p.status as SimPaymentStatus;
    if (body['skipWebhook'] !== true) void this.#sendStatusWebhook(record, after === 'cancelled' ? 'cancelled' : 'paid', { cancellation_id: cancellationId });
    const h = p.cancel_history.at(-1)!;
    return {
      ok: true,
      body: { cancellation: { status: 'SUCCEEDED', id: cancellationId, totalAmount: refund, taxFreeAmount: 0, vatAmount: 0, reason, requestedAt: new Date(h.cancelled_at * 1000).toISOString(), cancelledAt: new Date(h.cancelled_at * 1000).toISOString() } },
    };
  }

  /**
   * `POST /payments/{paymentId}/confirm` (V2 manual confirmation): checks the token and the
   * verification fields, then the PG answers as the payment window was told (`outcome`). With
   * `manual_confirm_latency_ms`, the answer leaves that much after the decision.
   */
  async v2Confirm(paymentId: string, body: Record<string, unknown>): Promise<V2RestResult> {
    const record = this.#v2Latest(paymentId);
    if (record === undefined) return { ok: false, failure: v2Failure(404, 'PAYMENT_NOT_FOUND', MESSAGES.paymentNotFound) };
    const a = record.v2!;
    const p = record.payment;
    const latency = this.#faultsFor(record).manual_confirm_latency_ms ?? 0;
    const answer = async (result: V2RestResult): Promise<V2RestResult> => {
      await this.#state.pause(latency);
      return result;
    };
    if (typeof body['paymentToken'] !== 'string' || a.paymentToken === null || body['paymentToken'] !== a.paymentToken) {
      return answer({ ok: false, failure: v2Failure(400, 'INVALID_PAYMENT_TOKEN', '유효하지 않은 결제 토큰입니다.') });
    }
    if (body['storeId'] !== undefined && body['storeId'] !== a.storeId) return answer({ ok: false, failure: v2Failure(403, 'FORBIDDEN', 'not your store') });
    if (p.status === 'paid' || p.status === 'cancelled') return answer({ ok: false, failure: v2Failure(409, 'ALREADY_PAID', '이미 결제된 건입니다.') });
    const mismatch = (field: string) => answer({ ok: false, failure: v2Failure(409, 'INFORMATION_MISMATCH', `${field} does not match the payment`) });
    if (body['txId'] !== undefined && body['txId'] !== a.transactionId) return mismatch('txId');
    if (body['totalAmount'] !== undefined && body['totalAmount'] !== p.amount) return mismatch('totalAmount');
    if (body['currency'] !== undefined && body['currency'] !== p.currency) return mismatch('currency');
    if (p.status !== 'ready') return answer({ ok: false, failure: v2Failure(409, 'INVALID_REQUEST', 'the payment is not waiting for confirmation') });
    const refusal = this.#faultsFor(record).manual_confirm_refusal;
    if (refusal !== undefined) return answer({ ok: false, failure: v2Failure(409, refusal, `refused (${refusal})`) });
    // One confirmation per token: a second one finds the payment paid or failed.
    if (a.outcome === 'failed' || a.outcome === 'abandoned') {
      this.#markFailed(record, MESSAGES.pgDeclined);
      void this.#sendStatusWebhook(record, 'failed');
      return answer({ ok: false, failure: v2Failure(502, 'PG_PROVIDER', 'PG declined', { pgCode: 'SIM-DECLINED', pgMessage: MESSAGES.pgDeclined }) });
    }
    const faults = this.#faultsFor(record);
    await this.#applyOutcome(this.#state, record, 'paid', faults);
    if ((faults.failed_then_paid_ms ?? 0) > 0) {
      // The PG reported a failure (the payment turns paid later, see #applyOutcome).
      return answer({ ok: false, failure: v2Failure(502, 'PG_PROVIDER', 'PG declined', { pgCode: 'SIM-DECLINED', pgMessage: MESSAGES.pgDeclined }) });
    }
    const paidAt = p.paid_at > 0 ? new Date(p.paid_at * 1000).toISOString() : new Date().toISOString();
    return answer({ ok: true, body: { payment: { pgTxId: p.pg_tid ?? '', paidAt } } });
  }

  /**
   * Plays the buyer and the PG for one V2 attempt of payment `payment_id`: a new transactionId,
   * the signed confirm call (`confirm` mode) and the outcome, or (`manual` mode) the payment left
   * READY with a paymentToken for the merchant's confirmation.
   */
  async payV2(input: V2PaymentWindowRequest): Promise<V2PaymentWindowResult> {
    const req = parseV2PaymentWindowRequest(input);
    const state = this.#state;
    const latest = this.#v2Latest(req.payment_id)?.payment.status;
    if (latest === 'paid' || latest === 'cancelled') throw new SimError('ALREADY_PAID', `payment ${req.payment_id} is paid already: V2 opens no new attempt`);
    const transactionId = newTransactionId();
    const record = this.#createPayment(state, {
      merchant_uid: req.payment_id, amount: req.amount, faults: req.faults ?? {},
      ...(req.currency !== undefined ? { currency: req.currency } : {}),
      ...(req.pg_provider !== undefined ? { pg_provider: req.pg_provider } : {}),
      ...((req.webhook_url ?? this.#defaultV2WebhookUrl) !== undefined ? { notice_url: (req.webhook_url ?? this.#defaultV2WebhookUrl)! } : {}),
    }, `v2.${transactionId}`);
    if (req.webhook_url === undefined && this.#defaultV2WebhookUrl === undefined) record.noticeUrl = undefined;
    const manual = req.mode === 'manual';
    record.v2 = {
      transactionId,
      storeId: req.store_id ?? this.#storeId,
      webhookVersion: req.webhook_version ?? '2024-04-25',
      paymentToken: manual ? newPaymentToken() : null,
      outcome: req.outcome ?? 'paid',
    };
    const result = (confirm: ConfirmExchange | null): V2PaymentWindowResult => ({
      payment: clonePayment(record.payment), v2: v2PaymentJson(record.payment, record.v2!), confirm,
      payment_token: record.v2!.paymentToken, transaction_id: transactionId,
    });
    const faults = this.#faultsFor(record);
    const prepared = state.prepared.get(req.payment_id);
    if (prepared !== undefined && prepared !== req.amount) {
      this.#markFailed(record, MESSAGES.prepareMismatch(prepared, req.amount));
      return result(null);
    }
    // Manual confirmation: the buyer authenticated; the payment waits for the merchant's confirmation.
    if (manual) return result(null);

    let confirm: ConfirmExchange | null = null;
    if (req.confirm_url !== undefined) {
      confirm = await this.#callConfirm(state, record, req.confirm_url, req.confirm_body, faults.confirm_timeout_ms ?? DEFAULT_CONFIRM_TIMEOUT_MS);
      if (confirm.status !== 200) {
        this.#markFailed(record, MESSAGES.confirmStopped(errorMessageOf(confirm.body)));
        void this.#sendStatusWebhook(record, 'failed');
        return result(confirm);
      }
    }
    if (!(await state.pause(req.buyer_delay_ms ?? 0))) return result(confirm);
    await this.#applyOutcome(state, record, req.outcome ?? 'paid', faults);
    return result(confirm);
  }

  // ---- simulator controls -----------------------------------------------------------------------

  #record(impUid: string): PaymentRecord {
    const record = this.#state.payments.get(impUid);
    if (record === undefined) throw new SimError('PAYMENT_NOT_FOUND', `no payment ${impUid}`);
    return record;
  }

  /**
   * A cancel made on PortOne's side (the merchant console, the PG): refunds `amount` (default: the
   * whole balance) and sends a `cancelled` webhook, as PortOne does for console cancels.
   */
  cancelFromConsole(impUid: string, opts: { amount?: unknown; reason?: unknown } = {}): SimPayment {
    const record = this.#record(impUid);
    const amount = parseOptionalAmount(opts.amount);
    if (opts.reason !== undefined && opts.reason !== null && typeof opts.reason !== 'string') {
      throw new SimError('INVALID_REQUEST', 'reason must be a string');
    }
    const reason = typeof opts.reason === 'string' ? opts.reason : MESSAGES.consoleCancelReason;
    const p = record.payment;
    if (p.status !== 'paid') throw new SimError('PAYMENT_NOT_PAID', `payment ${impUid} is ${p.status}, not paid`);
    const balance = p.amount - p.cancel_amount;
    const refund = amount ?? balance;
    if (refund > balance) throw new SimError('INVALID_REQUEST', `amount ${refund} exceeds the refundable balance ${balance}`);
    const cancellationId = this.#applyCancel(record, refund, reason);
    this.#state.cancels.push({
      imp_uid: p.imp_uid,
      merchant_uid: p.merchant_uid,
      amount: refund,
      checksum: null,
      reason,
      ok: true,
      message: null,
      source: 'console',
      at: new Date().toISOString(),
    });
    void this.#sendStatusWebhook(record, 'cancelled', { cancellation_id: cancellationId });
    return clonePayment(p);
  }

  /**
   * Sends a webhook for a payment again, claiming `status` (default: its real status), with fields of
   * `bodyOverride` merged over the body. Lets tests check that merchants re-fetch instead of trusting
   * the body. Resolves after the first attempt.
   */
  async sendWebhook(impUid: string, status?: unknown, bodyOverride?: Record<string, unknown>): Promise<void> {
    const record = this.#record(impUid);
    if (record.noticeUrl === undefined) throw new SimError('NO_NOTICE_URL', `payment ${impUid} has no notice_url`);
    const claimed = status === undefined || status === null ? record.payment.status : parseStatus(status);
    const lastCancel = record.payment.cancel_history.at(-1);
    const extra: Record<string, unknown> =
      claimed === 'cancelled' && lastCancel !== undefined ? { cancellation_id: lastCancel.cancellation_id } : {};
    await this.#sendStatusWebhook(record, claimed, { ...extra, ...bodyOverride });
  }

  /**
   * Changes a payment's status behind the merchant's back, as a PG that changes its mind does
   * (reported failed, later paid). Sends a webhook only when asked.
   */
  setPaymentStatus(impUid: string, status: unknown, opts: SetPaymentStatusOptions = {}): SimPayment {
    const record = this.#record(impUid);
    const next: SimPaymentStatus = parseStatus(status);
    const p = record.payment;
    switch (next) {
      case 'paid':
        this.#markPaid(record);
        break;
      case 'failed':
        this.#markFailed(record, opts.failReason ?? MESSAGES.pgDeclined);
        break;
      case 'cancelled': {
        const balance = p.amount - p.cancel_amount;
        if (balance > 0) this.#applyCancel(record, balance, MESSAGES.consoleCancelReason);
        p.status = 'cancelled';
        p.cancelled_at = this.#unixNow();
        break;
      }
      case 'ready':
        p.status = 'ready';
        break;
    }
    if (opts.webhook === true) void this.#sendStatusWebhook(record, next);
    return clonePayment(p);
  }

  /** A snapshot of the ledger, optionally narrowed to one imp_uid and/or merchant_uid. */
  ledger(filter: LedgerFilter = {}): Ledger {
    const state = this.#state;
    const match = (e: { imp_uid: string | null; merchant_uid: string | null }): boolean =>
      (filter.imp_uid === undefined || e.imp_uid === filter.imp_uid) &&
      (filter.merchant_uid === undefined || e.merchant_uid === filter.merchant_uid);
    const payments: SimPayment[] = [];
    for (const record of state.payments.values()) if (match(record.payment)) payments.push(clonePayment(record.payment));
    return {
      payments,
      confirms: state.confirms.filter(match).map((e) => ({ ...e })),
      webhooks: state.webhooks.filter(match).map((e) => ({ ...e })),
      cancels: state.cancels.filter(match).map((e) => ({ ...e })),
    };
  }

  /** Resolves when no background work (webhooks, retries, delayed outcomes) is pending. */
  settled(): Promise<void> {
    return this.#state.settled();
  }

  /** Pieces of background work not done yet for merchant_uids starting with `prefix` (all: ''). */
  pending(prefix = ''): number {
    return this.#state.pending(prefix);
  }

  /** Forgets everything (payments, tokens, prepared amounts, ledger, faults) and stops pending work. */
  reset(): void {
    this.#state.dispose();
    this.#state = new SimState();
    this.#faults = {};
  }

  /** Stops pending work for good. */
  close(): void {
    this.#state.dispose();
  }
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** V2: the merchant's `errorMessage`, when its answer was a JSON object carrying one. */
function errorMessageOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const message = (body as Record<string, unknown>)['errorMessage'];
  return typeof message === 'string' && message !== '' ? message : null;
}

/** The merchant's `reason`, when its answer was a JSON object carrying one. */
function reasonOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const reason = (body as Record<string, unknown>)['reason'];
  return typeof reason === 'string' && reason !== '' ? reason : null;
}
