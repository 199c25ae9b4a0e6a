import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { CallDeadline } from './deadline.ts';
import {
  PortOneApiError,
  PortOneAuthError,
  PortOneError,
  PortOneProtocolError,
  PortOneUnavailableError,
  type PortOneEndpoint,
  type UnavailableReason,
} from './errors.ts';
import { parsePayment } from './payment.ts';
import type {
  CancelPaymentRequest,
  PortOneClientOptions,
  PortOnePayment,
  PortOneRequestResult,
} from './types.ts';

const DEFAULT_TIMEOUT_MS = 4000;
/** Most imp_uids one `GET /payments?imp_uid[]=` asks for (PortOne's own limit is 100). */
export const PAYMENTS_PER_LOOKUP = 100;
/** Payments per page of `GET /payments/status/{paid,cancelled}` (PortOne allows up to 100). */
const LIST_PAGE_SIZE = 100;
const DEFAULT_RETRIES = 3;
const DEFAULT_BACKOFF_MS = 200;
/** Renew this long before `expired_at`, so a token never expires between our check and PortOne's. */
const TOKEN_RENEW_MARGIN_MS = 60_000;

/** What one logical call (after retries) produced, before endpoint-specific handling. */
type CallOutcome =
  | { kind: 'ok'; response: unknown }
  | { kind: 'not_found' }
  | { kind: 'unauthorized'; httpStatus: number; message: string | null };

interface CachedToken {
  value: string;
  /** Local clock time after which the token is renewed before use. */
  renewAtMs: number;
}

interface Envelope {
  code: number;
  message: string | null;
  response: unknown;
}

/**
 * PortOne V1 REST client.
 *
 * - Obtains an access token with `POST /users/getToken`, caches it and renews it ahead of expiry;
 *   concurrent callers share one token request; a 401 drops the token and retries once.
 * - Unwraps PortOne's `{code, message, response}` envelope: `code != 0` is a {@link PortOneApiError}
 *   and is never retried.
 * - Retries timeouts, network errors, 429 and 5xx with jittered exponential backoff, then throws
 *   {@link PortOneUnavailableError}.
 */
export class PortOneClient {
  /** The path PortOne's endpoints sit under (the base URL's, usually empty). */
  readonly #basePath: string;
  /** Keep-alive connections to PortOne's origin. */
  readonly #pool: Pool;
  readonly #impKey: string;
  readonly #impSecret: string;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #onRequest: PortOneClientOptions['onRequest'];
  #token: CachedToken | null = null;
  #tokenRequest: Promise<string> | null = null;

  constructor(opts: PortOneClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`PortOneClient: baseUrl is not a URL: ${JSON.stringify(opts.baseUrl)}`);
    }
    if (!opts.impKey || !opts.impSecret) throw new TypeError('PortOneClient: impKey and impSecret are required');
    this.#basePath = parsed.pathname.replace(/\/+$/, '');
    this.#impKey = opts.impKey;
    this.#impSecret = opts.impSecret;
    this.#timeoutMs = nonNegative(opts.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs');
    this.#pool = new Pool(parsed.origin);
    this.#retries = Math.floor(nonNegative(opts.retries, DEFAULT_RETRIES, 'retries'));
    this.#backoffMs = nonNegative(opts.backoffMs, DEFAULT_BACKOFF_MS, 'backoffMs');
    this.#onRequest = opts.onRequest;
  }

  /**
   * `GET /payments/{imp_uid}`: the payment as PortOne knows it, the only source to trust (webhook
   * bodies are hints). Resolves null when PortOne does not know the imp_uid (404).
   */
  async getPayment(impUid: string): Promise<PortOnePayment | null> {
    const outcome = await this.#authorized('getPayment', 'GET', `/payments/${encodeURIComponent(impUid)}`);
    return outcome === null ? null : parsePayment('getPayment', outcome);
  }

  /**
   * `GET /payments?imp_uid[]=...`: several payments in one call (at most {@link PAYMENTS_PER_LOOKUP}),
   * by imp_uid. PortOne answers the ones it knows; an imp_uid missing from the answer is not said to be
   * unknown (ask it alone: `getPayment`'s 404 says that). Resolves an empty map on 404.
   */
  async getPayments(impUids: readonly string[]): Promise<Map<string, PortOnePayment>> {
    if (impUids.length === 0) return new Map();
    if (impUids.length > PAYMENTS_PER_LOOKUP) throw new RangeError(`getPayments: at most ${PAYMENTS_PER_LOOKUP} imp_uids a call, got ${impUids.length}`);
    const query = impUids.map((imp) => `imp_uid%5B%5D=${encodeURIComponent(imp)}`).join('&');
    const outcome = await this.#authorized('getPayments', 'GET', `/payments?${query}`);
    const found = new Map<string, PortOnePayment>();
    if (outcome === null) return found;
    if (!Array.isArray(outcome)) throw new PortOneProtocolError('getPayments', 'PortOne answered without a list of payments');
    const asked = new Set(impUids);
    for (const raw of outcome) {
      let p: PortOnePayment;
      try {
        p = parsePayment('getPayments', raw);
      } catch {
        // One entry this client cannot read says nothing of the others: its payment is left out, and
        // a caller asks it alone (where the same answer is a PortOneProtocolError of its own).
        continue;
      }
      // Only what was asked for: anything else in the answer is not taken as news of it.
      if (asked.has(p.imp_uid)) found.set(p.imp_uid, p);
    }
    return found;
  }

  /**
   * `GET /payments/find/{merchant_uid}`: the latest payment attempt of an order, whatever its status.
   * Resolves null when the order has no payment (404). Used when a hold expires without any webhook.
   */
  async findPaymentByMerchantUid(merchantUid: string): Promise<PortOnePayment | null> {
    const outcome = await this.#authorized('findPayment', 'GET', `/payments/find/${encodeURIComponent(merchantUid)}`);
    return outcome === null ? null : parsePayment('findPayment', outcome);
  }

  /**
   * `GET /payments/findAll/{merchant_uid}`: every payment attempt of an order, oldest first. An order
   * can have several (a failed card then another, a payment without confirm beside one with it), and
   * `find` returns only the latest: reconciling after Redis lost its queues must see them all. Pages
   * through PortOne's answer (20 a page), at most `maxPages` pages; resolves [] when there is none.
   */
  async findAllPaymentsByMerchantUid(merchantUid: string, maxPages = 10): Promise<PortOnePayment[]> {
    const payments: PortOnePayment[] = [];
    for (let page = 1; page >= 1 && page <= maxPages; ) {
      const path = `/payments/findAll/${encodeURIComponent(merchantUid)}?sorting=started&page=${page}`;
      const outcome = await this.#authorized('findAllPayments', 'GET', path);
      if (outcome === null) break;
      const body = outcome as { list?: unknown; next?: unknown };
      if (typeof body !== 'object' || body === null || !Array.isArray(body.list)) {
        throw new PortOneProtocolError('findAllPayments', 'PortOne answered without a list of payments');
      }
      for (const raw of body.list) payments.push(parsePayment('findAllPayments', raw));
      page = typeof body.next === 'number' && body.next > page ? body.next : 0;
    }
    return payments;
  }

  /**
   * `GET /payments/status/paid?from=&to=&page=&limit=100&sorting=paid`: one page of the store's payments
   * paid between `fromSec` and `toSec` (unix seconds, by the time they were paid), oldest first, and
   * the next page's number (null after the last). The ledger sweep reads it to find paid payments no
   * webhook told dropgate about. A 404 is an empty page.
   */
  listPaidPayments(fromSec: number, toSec: number, page: number): Promise<{ payments: PortOnePayment[]; next: number | null }> {
    return this.#listByStatus('listPaidPayments', 'paid', 'paid', fromSec, toSec, page);
  }

  /**
   * `GET /payments/status/cancelled?from=&to=&page=&limit=100&sorting=updated`: one page of the store's
   * payments cancelled in full between `fromSec` and `toSec` (unix seconds: PortOne filters the
   * cancelled list by the time they were cancelled), oldest first, and the next page's number (null
   * after the last). PortOne has no sort by cancel time; `updated` (the last change of the payment) is
   * it for a payment cancelled in full, whose cancel is the last change it can have. The ledger sweep
   * reads it to find ticketed payments cancelled at PortOne whose webhook was lost. A 404 is an empty page.
   */
  listCancelledPayments(fromSec: number, toSec: number, page: number): Promise<{ payments: PortOnePayment[]; next: number | null }> {
    return this.#listByStatus('listCancelledPayments', 'cancelled', 'updated', fromSec, toSec, page);
  }

  async #listByStatus(
    endpoint: 'listPaidPayments' | 'listCancelledPayments', status: 'paid' | 'cancelled', sorting: 'paid' | 'updated',
    fromSec: number, toSec: number, page: number,
  ): Promise<{ payments: PortOnePayment[]; next: number | null }> {
    const path = `/payments/status/${status}?from=${Math.floor(fromSec)}&to=${Math.floor(toSec)}&page=${page}&limit=${LIST_PAGE_SIZE}&sorting=${sorting}`;
    const outcome = await this.#authorized(endpoint, 'GET', path);
    if (outcome === null) return { payments: [], next: null };
    const body = outcome as { list?: unknown; next?: unknown };
    if (typeof body !== 'object' || body === null || !Array.isArray(body.list)) {
      throw new PortOneProtocolError(endpoint, 'PortOne answered without a list of payments');
    }
    const payments = body.list.map((raw) => parsePayment(endpoint, raw));
    return { payments, next: typeof body.next === 'number' && body.next > page ? body.next : null };
  }

  /**
   * `POST /payments/cancel`: refunds `amount` (or the whole refundable balance) and resolves with the
   * payment after the cancel.
   *
   * `checksum` is always sent: PortOne refuses the cancel (a {@link PortOneApiError}) when the payment's
   * refundable balance differs from it. That makes the call safe to retry: if an earlier attempt did
   * refund but its answer was lost, the retry is refused instead of refunding twice; re-fetch the
   * payment to learn what happened.
   */
  async cancelPayment(req: CancelPaymentRequest): Promise<PortOnePayment> {
    if (!Number.isSafeInteger(req.checksum) || req.checksum < 0) {
      throw new TypeError(`cancelPayment: checksum must be a non-negative integer, got ${req.checksum}`);
    }
    const body: Record<string, unknown> = { imp_uid: req.impUid, checksum: req.checksum, reason: req.reason };
    if (req.merchantUid !== undefined) body['merchant_uid'] = req.merchantUid;
    if (req.amount !== undefined) body['amount'] = req.amount;
    const outcome = await this.#authorized('cancelPayment', 'POST', '/payments/cancel', body);
    if (outcome === null) throw new PortOneApiError('cancelPayment', 404, null, null);
    return parsePayment('cancelPayment', outcome);
  }

  /**
   * `POST /payments/prepare`: pre-registers the amount of an order, so a payment window opened with a
   * tampered amount is stopped by PortOne before it reaches the PG.
   */
  async preparePayment(merchantUid: string, amount: number): Promise<void> {
    const outcome = await this.#authorized('preparePayment', 'POST', '/payments/prepare', {
      merchant_uid: merchantUid,
      amount,
    });
    if (outcome === null) throw new PortOneApiError('preparePayment', 404, null, null);
  }

  /** Runs an authenticated call; resolves the envelope's `response`, or null on 404. */
  async #authorized(endpoint: PortOneEndpoint, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    for (let refreshed = false; ; refreshed = true) {
      const token = await this.#accessToken();
      const outcome = await this.#call(endpoint, method, path, body, token);
      if (outcome.kind === 'ok') return outcome.response;
      if (outcome.kind === 'not_found') return null;
      // A 401 means PortOne no longer honours this token (revoked, or expired early by clock skew):
      // drop it and try once with a fresh one. A fresh token refused too means the account is broken.
      if (this.#token?.value === token) this.#token = null;
      if (refreshed) throw new PortOneAuthError(endpoint, outcome.httpStatus, outcome.message);
    }
  }

  /** A valid access token: the cached one, or one shared request for a new one. */
  #accessToken(): Promise<string> {
    const cached = this.#token;
    if (cached !== null && Date.now() < cached.renewAtMs) return Promise.resolve(cached.value);
    this.#tokenRequest ??= this.#requestToken().finally(() => {
      this.#tokenRequest = null;
    });
    return this.#tokenRequest;
  }

  async #requestToken(): Promise<string> {
    const startedAt = Date.now();
    let outcome: CallOutcome;
    try {
      outcome = await this.#call('getToken', 'POST', '/users/getToken', {
        imp_key: this.#impKey,
        imp_secret: this.#impSecret,
      });
    } catch (err) {
      if (err instanceof PortOneApiError) throw new PortOneAuthError('getToken', err.httpStatus, err.portoneMessage);
      throw err;
    }
    if (outcome.kind === 'unauthorized') throw new PortOneAuthError('getToken', outcome.httpStatus, outcome.message);
    if (outcome.kind === 'not_found') throw new PortOneAuthError('getToken', 404, null);
    const response = outcome.response as { access_token?: unknown; expired_at?: unknown; now?: unknown } | null;
    const accessToken = response?.access_token;
    const expiredAt = response?.expired_at;
    const now = response?.now;
    if (typeof accessToken !== 'string' || accessToken === '' || typeof expiredAt !== 'number' || typeof now !== 'number') {
      throw new PortOneProtocolError('getToken', 'PortOne getToken answered without access_token, expired_at and now');
    }
    // Lifetime from PortOne's own clock (expired_at - now), applied to ours from when we asked:
    // our clock may be skewed against PortOne's, but durations agree. Short-lived tokens (tests) renew
    // at three quarters of their life instead of never being reused.
    const ttlMs = Math.max(0, (expiredAt - now) * 1000);
    const margin = Math.min(TOKEN_RENEW_MARGIN_MS, ttlMs / 4);
    this.#token = { value: accessToken, renewAtMs: startedAt + ttlMs - margin };
    return accessToken;
  }

  /**
   * One logical call: HTTP attempts with retries on transient failures. Throws PortOneApiError on an
   * error envelope or a permanent 4xx, PortOneUnavailableError once the retries are spent.
   */
  async #call(
    endpoint: PortOneEndpoint,
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    token?: string,
  ): Promise<CallOutcome> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const fullPath = this.#basePath + path;

    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let failure: { reason: UnavailableReason; httpStatus: number | null; cause?: unknown };
      try {
        // undici's Pool.request(), not fetch(): the same HTTP client without the WHATWG Request,
        // Response and streams around it (fetch cost about 100 us more CPU a call). The attempt's
        // deadline: CallDeadline (deadline.ts).
        const deadline = new CallDeadline(this.#timeoutMs, () => new AttemptTimeout(this.#timeoutMs));
        let res: Dispatcher.ResponseData;
        let text: string;
        try {
          res = await this.#pool.request({ path: fullPath, method, headers, body: payload, signal: deadline });
          text = await res.body.text();
        } catch (err) {
          throw deadline.reason ?? err;
        } finally {
          deadline.clear();
        }
        const envelope = parseEnvelope(text);
        const status = res.statusCode;

        if (status >= 200 && status < 300 && envelope !== null) {
          if (envelope.code !== 0) {
            this.#report(endpoint, 'api_error', started);
            throw new PortOneApiError(endpoint, status, envelope.code, envelope.message);
          }
          this.#report(endpoint, 'ok', started);
          return { kind: 'ok', response: envelope.response };
        }
        if (status === 401) {
          this.#report(endpoint, 'http_error', started);
          return { kind: 'unauthorized', httpStatus: status, message: envelope?.message ?? null };
        }
        if (status === 404) {
          this.#report(endpoint, 'not_found', started);
          return { kind: 'not_found' };
        }
        if (status >= 400 && status < 500 && status !== 429) {
          this.#report(endpoint, envelope === null ? 'http_error' : 'api_error', started);
          throw new PortOneApiError(endpoint, status, envelope?.code ?? null, envelope?.message ?? null);
        }
        // 5xx, 429, or a 2xx whose body is not an envelope (a proxy's page): PortOne is not answering
        // properly right now, which another attempt may fix.
        this.#report(endpoint, 'http_error', started);
        failure = { reason: 'http_error', httpStatus: status };
      } catch (err) {
        if (err instanceof PortOneError) throw err;
        const reason: UnavailableReason = isTimeout(err) ? 'timeout' : 'network_error';
        this.#report(endpoint, reason, started);
        failure = { reason, httpStatus: null, cause: err };
      }

      if (attempt > this.#retries) {
        throw new PortOneUnavailableError(endpoint, attempt, failure.reason, failure.httpStatus, { cause: failure.cause });
      }
      await sleep(backoffDelay(this.#backoffMs, attempt));
    }
  }

  #report(endpoint: PortOneEndpoint, result: PortOneRequestResult, startedAt: number): void {
    reportRequest(this.#onRequest, endpoint, result, startedAt);
  }
}

/** Tells `onRequest` (the metrics) how a call went; a failing hook never fails the call. */
export function reportRequest(
  onRequest: PortOneClientOptions['onRequest'], endpoint: PortOneEndpoint, result: PortOneRequestResult, startedAt: number,
): void {
  if (onRequest === undefined) return;
  try {
    onRequest(endpoint, result, (performance.now() - startedAt) / 1000);
  } catch {
    // Metrics must never turn a PortOne answer into a failure.
  }
}

/**
 * Delay before retry number `attempt` (1-based): exponential, with "equal jitter" (half fixed, half
 * random) so many workers retrying after the same outage do not hit PortOne in lockstep.
 */
export function backoffDelay(baseMs: number, attempt: number): number {
  const ceiling = baseMs * 2 ** (attempt - 1);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function parseEnvelope(text: string): Envelope | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { code, message, response } = value as Record<string, unknown>;
  if (typeof code !== 'number') return null;
  return { code, message: typeof message === 'string' ? message : null, response };
}

/** An attempt its deadline aborted. */
class AttemptTimeout extends Error {
  override readonly name = 'TimeoutError';
  constructor(ms: number) {
    super(`no answer from PortOne within ${ms} ms`);
  }
}

/** undici's codes for its own connect, headers or body deadlines. */
const TIMEOUT_CODES: ReadonlySet<unknown> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function isTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const timedOut = (e: Error) => e.name === 'TimeoutError' || TIMEOUT_CODES.has((e as Error & { code?: unknown }).code);
  return timedOut(err) || (err.cause instanceof Error && timedOut(err.cause));
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`PortOneClient: ${name} must be a non-negative number`);
  return value;
}
