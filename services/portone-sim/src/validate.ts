/**
 * Input checks shared by the HTTP routes and the library API, so both refuse the same things.
 * Unknown fault names are refused rather than ignored: a typo (`webhook_los`) would otherwise turn a
 * fault test into a test of nothing.
 */
import { SimError } from './errors.ts';
import type { Faults, PaymentOutcome, PaymentWindowRequest, SimPaymentStatus } from './types.ts';

type FaultKind = 'probability' | 'count' | 'ms' | 'bool' | 'format' | 'errorType';

const FAULT_KINDS: Record<keyof Faults, FaultKind> = {
  webhook_loss: 'probability',
  webhook_duplicates: 'count',
  webhook_delay_ms: 'ms',
  webhook_reorder: 'bool',
  webhook_reorder_max_hold_ms: 'ms',
  webhook_before_return: 'bool',
  webhook_format: 'format',
  webhook_retries: 'count',
  webhook_retry_ms: 'ms',
  webhook_timeout_ms: 'ms',
  failed_then_paid_ms: 'ms',
  rest_latency_ms: 'ms',
  rest_failure_rate: 'probability',
  rest_down: 'bool',
  cancel_failures: 'count',
  confirm_timeout_ms: 'ms',
  manual_confirm_latency_ms: 'ms',
  manual_confirm_refusal: 'errorType',
};

const OUTCOMES: ReadonlySet<string> = new Set<PaymentOutcome>(['paid', 'failed', 'abandoned']);
const STATUSES: ReadonlySet<string> = new Set<SimPaymentStatus>(['ready', 'paid', 'cancelled', 'failed']);

function invalid(message: string): SimError {
  return new SimError('INVALID_REQUEST', message);
}

function asObject(input: unknown, what: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw invalid(`${what} must be a JSON object`);
  return input as Record<string, unknown>;
}

/** Validates a faults object; throws SimError INVALID_REQUEST naming the offending field. */
export function parseFaults(input: unknown, what = 'faults'): Faults {
  const obj = asObject(input, what);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const kind = (FAULT_KINDS as Record<string, FaultKind | undefined>)[key];
    if (kind === undefined) throw invalid(`${what}.${key} is not a known fault (known: ${Object.keys(FAULT_KINDS).join(', ')})`);
    if (value === null || value === undefined) continue;
    const field = `${what}.${key}`;
    switch (kind) {
      case 'probability':
        if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw invalid(`${field} must be a number from 0 to 1`);
        break;
      case 'count':
        if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > 100) {
          throw invalid(`${field} must be an integer from 0 to 100`);
        }
        break;
      case 'ms':
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 86_400_000) {
          throw invalid(`${field} must be a number of milliseconds from 0 to 86400000`);
        }
        break;
      case 'bool':
        if (typeof value !== 'boolean') throw invalid(`${field} must be true or false`);
        break;
      case 'errorType':
        if (typeof value !== 'string' || !/^[A-Z][A-Z_]{0,63}$/.test(value)) throw invalid(`${field} must be a PortOne error type (A-Z and _)`);
        break;
      case 'format':
        if (value !== 'json' && value !== 'form') throw invalid(`${field} must be "json" or "form"`);
        break;
    }
    out[key] = value;
  }
  return out as Faults;
}

/** A positive safe integer amount (KRW has no minor unit). */
export function isAmount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function optionalUrl(obj: Record<string, unknown>, key: string): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`${key} must be a URL`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${key} must be an absolute http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${key} must be an absolute http(s) URL`);
  return value;
}

function optionalString(obj: Record<string, unknown>, key: string): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '') throw invalid(`${key} must be a non-empty string`);
  return value;
}

/** Validates `POST /sim/v1/payments`. */
export function parsePaymentWindowRequest(input: unknown): PaymentWindowRequest {
  const obj = asObject(input, 'body');
  const merchantUid = obj['merchant_uid'];
  if (typeof merchantUid !== 'string' || merchantUid === '') throw invalid('merchant_uid must be a non-empty string');
  if (!isAmount(obj['amount'])) throw invalid('amount must be a positive integer');
  const outcome = obj['outcome'] ?? 'paid';
  if (typeof outcome !== 'string' || !OUTCOMES.has(outcome)) throw invalid('outcome must be "paid", "failed" or "abandoned"');
  const delay = obj['buyer_delay_ms'] ?? 0;
  if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0 || delay > 3_600_000) {
    throw invalid('buyer_delay_ms must be a number of milliseconds from 0 to 3600000');
  }
  const confirmBody = obj['confirm_body'];
  const req: PaymentWindowRequest = {
    merchant_uid: merchantUid,
    amount: obj['amount'],
    outcome: outcome as PaymentOutcome,
    buyer_delay_ms: delay,
    faults: obj['faults'] === undefined || obj['faults'] === null ? {} : parseFaults(obj['faults']),
  };
  const confirmUrl = optionalUrl(obj, 'confirm_url');
  if (confirmUrl !== undefined) req.confirm_url = confirmUrl;
  const noticeUrl = optionalUrl(obj, 'notice_url');
  if (noticeUrl !== undefined) req.notice_url = noticeUrl;
  for (const key of ['currency', 'pay_method', 'pg_provider'] as const) {
    const value = optionalString(obj, key);
    if (value !== undefined) req[key] = value;
  }
  if (confirmBody !== undefined && confirmBody !== null) req.confirm_body = asObject(confirmBody, 'confirm_body');
  return req;
}

/** Validates a payment status given to `setPaymentStatus` or a webhook re-send. */
export function parseStatus(value: unknown, what = 'status'): SimPaymentStatus {
  if (typeof value !== 'string' || !STATUSES.has(value)) throw invalid(`${what} must be one of ready, paid, cancelled, failed`);
  return value as SimPaymentStatus;
}

/** Validates an optional object body (e.g. a webhook body override). */
export function parseOptionalObject(value: unknown, what: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  return asObject(value, what);
}

/** Validates an optional positive integer amount. */
export function parseOptionalAmount(value: unknown, what = 'amount'): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isAmount(value)) throw invalid(`${what} must be a positive integer`);
  return value;
}
