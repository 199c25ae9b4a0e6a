import { PortOneProtocolError, type PortOneEndpoint } from './errors.ts';
import type { PortOnePayment, PortOnePaymentStatus } from './types.ts';

const STATUSES: ReadonlySet<string> = new Set<PortOnePaymentStatus>(['ready', 'paid', 'cancelled', 'failed']);

/**
 * Reads the payment fields dropgate relies on from PortOne's `response`. PortOne sends many more
 * fields (and adds new ones); they are ignored. A payment without identity, amount or a known status
 * is refused: deciding a sale or a refund on it would be a guess.
 */
export function parsePayment(endpoint: PortOneEndpoint, raw: unknown): PortOnePayment {
  if (typeof raw !== 'object' || raw === null) {
    throw new PortOneProtocolError(endpoint, 'PortOne answered without a payment');
  }
  const p = raw as Record<string, unknown>;
  const impUid = p['imp_uid'];
  const merchantUid = p['merchant_uid'];
  const amount = p['amount'];
  const status = p['status'];
  if (typeof impUid !== 'string' || typeof merchantUid !== 'string' || typeof amount !== 'number') {
    throw new PortOneProtocolError(endpoint, 'PortOne payment lacks imp_uid, merchant_uid or amount');
  }
  if (typeof status !== 'string' || !STATUSES.has(status)) {
    throw new PortOneProtocolError(endpoint, `PortOne payment ${impUid} has an unknown status ${JSON.stringify(status)}`);
  }
  return {
    imp_uid: impUid,
    merchant_uid: merchantUid,
    amount,
    cancel_amount: numberOr0(p['cancel_amount']),
    currency: typeof p['currency'] === 'string' ? p['currency'] : 'KRW',
    status: status as PortOnePaymentStatus,
    fail_reason: stringOrNull(p['fail_reason']),
    paid_at: numberOr0(p['paid_at']),
    failed_at: numberOr0(p['failed_at']),
    cancelled_at: numberOr0(p['cancelled_at']),
    pay_method: stringOrNull(p['pay_method']),
    pg_provider: stringOrNull(p['pg_provider']),
  };
}

function numberOr0(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
