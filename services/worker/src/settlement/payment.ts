/** PortOne's truth about a payment: fetched over REST, recorded in Postgres as PortOne says it. */
import { UnrecoverableError } from 'bullmq';
import { lifecycle } from '@dropgate/db';
import { PortOneError, type PortOnePayment } from '@dropgate/portone';
import { TransientError, type WorkerContext } from '../context.ts';

/**
 * Fetches payment `impUid` (a V1 imp_uid or a V2 key, see PaymentGateway) of order `merchantUid`;
 * PortOne being unreachable is transient, a refusal (bad credentials) permanent.
 */
export async function fetchPayment(ctx: WorkerContext, merchantUid: string, impUid: string): Promise<PortOnePayment | null> {
  try {
    return await ctx.portone.getPayment(merchantUid, impUid);
  } catch (error) {
    if (error instanceof PortOneError && !error.transient) throw new UnrecoverableError(`PortOne refused: ${error.message}`);
    throw new TransientError(`PortOne unreachable: ${(error as Error).message}`);
  }
}

/** What PortOne says of `p`, as the record keeps it. */
export function paymentRecord(eventId: string, p: PortOnePayment): lifecycle.PaymentRecord {
  return {
    impUid: p.imp_uid,
    merchantUid: p.merchant_uid,
    eventId,
    amount: p.amount,
    cancelAmount: p.cancel_amount,
    status: p.status,
    failReason: p.fail_reason,
    paidAt: p.paid_at > 0 ? new Date(p.paid_at * 1000) : null,
  };
}

/** Records what PortOne says of `p` (insert or update). */
export function recordPayment(ctx: WorkerContext, eventId: string, p: PortOnePayment): Promise<void> {
  return lifecycle.upsertPayment(ctx.db, paymentRecord(eventId, p));
}

/** Money PortOne still holds for this payment. */
export function keptAmount(p: PortOnePayment): number {
  return p.status === 'paid' || p.status === 'cancelled' ? Math.max(0, p.amount - p.cancel_amount) : 0;
}
