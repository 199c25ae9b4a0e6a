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
  PaymentWindowRequest,
  PaymentWindowResult,
  SimPayment,
  SimPaymentPage,
  SimPaymentStatus,
  SimulatorOptions,
} from './types.ts';
import { parseFaults, parseOptionalAmount, parsePaymentWindowRequest, parseStatus } from './validate.ts';
import { dispatchWebhook } from './webhooks.ts';

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

const unixNow = (): number => Math.floor(Date.now() / 1000);

function clonePayment(p: SimPayment): SimPayment {
  return { ...p, cancel_history: p.cancel_history.map((h) => ({ ...h })) };
}

/** The simulator's behaviour. One instance per running simulator. */
export class SimulatorEngine {
  readonly #impKey: string | undefined;
  readonly #impSecret: string | undefined;
  readonly #tokenTtlMs: number;
  readonly #defaultNoticeUrl: string | undefined;
  #faults: Faults;
  #state = new SimState();

  constructor(opts: SimulatorOptions = {}) {
    const ttl = opts.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new SimError('INVALID_REQUEST', 'tokenTtlSeconds must be a positive number');
    this.#impKey = opts.impKey;
    this.#impSecret = opts.impSecret;
    this.#tokenTtlMs = ttl * 1000;
    this.#defaultNoticeUrl = opts.noticeUrl;
    this.#faults = parseFaults(opts.faults ?? {});
  }

  // ---- faults -------------------------------------------------------------------------------

  /** The global faults (a copy). */
  get faults(): Faults {
    return { ...this.#faults };
  }

  /** Replaces the global faults; throws SimError INVALID_REQUEST on an unknown or invalid fault. */
  setFaults(faults: unknown): Faults {
    this.#faults = parseFaults(faults);
    return this.faults;
  }

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
    const nowMs = Date.now();
    if (state.tokens.size > TOKEN_SWEEP_THRESHOLD) {
      for (const [token, expiresAt] of state.tokens) if (expiresAt <= nowMs) state.tokens.delete(token);
    }
    const token = randomBytes(20).toString('hex');
    const expiresAtMs = nowMs + this.#tokenTtlMs;
    state.tokens.set(token, expiresAtMs);
    return { access_token: token, expired_at: Math.floor(expiresAtMs / 1000), now: Math.floor(nowMs / 1000) };
  }

  /** Whether an `Authorization` header carries a token this simulator issued and that has not expired. */
  isAuthorized(authorization: string | undefined): boolean {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return false;
    const expiresAt = this.#state.tokens.get(authorization.slice('Bearer '.length).trim());
    return expiresAt !== undefined && Date.now() < expiresAt;
  }

  // ---- REST: payments -----------------------------------------------------------------------

  /** `GET /payments/{imp_uid}`: a copy of the payment, or null. */
  getPayment(impUid: string): SimPayment | null {
    const record = this.#state.payments.get(impUid);
    return record === undefined ? null : clonePayment(record.payment);
  }

  /** `GET /payments/find/{merchant_uid}[/{status}]`: the latest payment of the order (with that status). */
  findPayment(merchantUid: string, status?: string): SimPayment | null {
    const records = this.#state.byMerchantUid.get(merchantUid) ?? [];
    for (let i = records.length - 1; i >= 0; i--) {
      const record = records[i];
      if (record !== undefined && (status === undefined || record.payment.status === status)) {
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
    const records = (this.#state.byMerchantUid.get(merchantUid) ?? []).filter((r) => status === undefined || r.payment.status === status);
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
    else if (merchantUid !== null) record = state.byMerchantUid.get(merchantUid)?.at(-1);
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
    const now = unixNow();
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

    switch (req.outcome ?? 'paid') {
      case 'paid': {
        const flipAfter = faults.failed_then_paid_ms ?? 0;
        if (flipAfter > 0) {
          // Some PGs report a failure first and approve later: the buyer sees a failure, the money moves.
          this.#markFailed(record, MESSAGES.pgDeclined);
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
        break;
      case 'abandoned':
        // The buyer closed the window: the payment stays `ready` and nothing is sent.
        break;
    }
    return { payment: clonePayment(record.payment), confirm };
  }

  #createPayment(state: SimState, req: PaymentWindowRequest): PaymentRecord {
    let impUid: string;
    do {
      impUid = `imp_${String(randomInt(0, 1e12)).padStart(12, '0')}`;
    } while (state.payments.has(impUid));
    const payment: SimPayment = {
      imp_uid: impUid,
      merchant_uid: req.merchant_uid,
      amount: req.amount,
      cancel_amount: 0,
      currency: req.currency ?? 'KRW',
      status: 'ready',
      fail_reason: null,
      cancel_reason: null,
      started_at: unixNow(),
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

  async #callConfirm(
    state: SimState,
    record: PaymentRecord,
    url: string,
    override: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<ConfirmExchange> {
    const p = record.payment;
    const body: Record<string, unknown> = { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, amount: p.amount };
    if (override !== undefined) {
      for (const [key, value] of Object.entries(override)) {
        if (value === null) delete body[key];
        else body[key] = value;
      }
    }
    const started = performance.now();
    let status = 0;
    let answer: unknown = null;
    let timedOut = false;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), state.signal]),
      });
      // The deadline covers the body too: a 200 whose body comes late is a late answer.
      const text = await res.text();
      status = res.status;
      answer = parseBody(text);
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
      reason: reasonOf(answer),
      timed_out: timedOut,
      at: new Date().toISOString(),
    });
    return { status, latency_ms: latencyMs, body: answer, timed_out: timedOut };
  }

  async #turnPaidLater(state: SimState, record: PaymentRecord, ms: number): Promise<void> {
    if (!(await state.pause(ms))) return;
    if (record.payment.status !== 'failed') return;
    this.#markPaid(record);
    await this.#sendStatusWebhook(record, 'paid');
  }

  #markPaid(record: PaymentRecord): void {
    const p = record.payment;
    p.status = 'paid';
    p.paid_at = unixNow();
    p.pg_tid ??= `pg_${randomBytes(8).toString('hex')}`;
  }

  #markFailed(record: PaymentRecord, reason: string): void {
    const p = record.payment;
    p.status = 'failed';
    p.fail_reason = reason;
    p.failed_at = unixNow();
  }

  /** Sends a webhook about `record`; resolves after its first attempt (see dispatchWebhook). */
  #sendStatusWebhook(record: PaymentRecord, status: string, extra: Record<string, unknown> = {}): Promise<void> {
    if (record.noticeUrl === undefined) return Promise.resolve();
    const p = record.payment;
    return dispatchWebhook(this.#state, {
      impUid: p.imp_uid,
      merchantUid: p.merchant_uid,
      noticeUrl: record.noticeUrl,
      status,
      body: { imp_uid: p.imp_uid, merchant_uid: p.merchant_uid, status, ...extra },
      faults: this.#faultsFor(record),
    });
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
        p.cancelled_at = unixNow();
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

/** The merchant's `reason`, when its answer was a JSON object carrying one. */
function reasonOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const reason = (body as Record<string, unknown>)['reason'];
  return typeof reason === 'string' && reason !== '' ? reason : null;
}
