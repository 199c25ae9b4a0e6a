/** PortOne's truth about a payment: fetched over REST, recorded in Postgres as PortOne says it. */
import { UnrecoverableError } from 'bullmq';
import { BACKGROUND_LINGER_MS, GroupCommit, lifecycle } from '@dropgate/db';
import { PAYMENTS_PER_LOOKUP, PortOneError, apiOfPaymentKey, type PortOnePayment } from '@dropgate/portone';
import { TransientError, type WorkerContext } from '../context.ts';

/**
 * Fetches payment `impUid` (a V1 imp_uid or a V2 key, see PaymentGateway) of order `merchantUid`;
 * PortOne being unreachable is transient, a refusal (bad credentials) permanent.
 */
export async function fetchPayment(ctx: WorkerContext, merchantUid: string, impUid: string): Promise<PortOnePayment | null> {
  try {
    return await ctx.portone.getPayment(merchantUid, impUid);
  } catch (error) {
    throw lookupFailure(error);
  }
}

/** A failed lookup as the job sees it: PortOne refusing is permanent, anything else transient. */
export function lookupFailure(error: unknown): Error {
  if (error instanceof PortOneError && !error.transient) return new UnrecoverableError(`PortOne refused: ${error.message}`);
  return new TransientError(`PortOne unreachable: ${(error as Error).message}`);
}

/**
 * Per worker: concurrent lookups of V1 payments share one `GET /payments?imp_uid[]=` (up to
 * PAYMENTS_PER_LOOKUP a call, gathered for BACKGROUND_LINGER_MS): at a drop the worker verifies every
 * approved confirm and settles every paid webhook, and one PortOne call each was most of the worker's
 * work a payment (and of the simulator's in a rehearsal: 84 µs an outcome against 12-16 shared), and
 * as many calls on PortOne's API as there were payments.
 */
const lookups = new WeakMap<WorkerContext, GroupCommit<string, PortOnePayment | null | undefined>>();
function lookupsOf(ctx: WorkerContext): GroupCommit<string, PortOnePayment | null | undefined> {
  let batch = lookups.get(ctx);
  if (!batch) {
    batch = new GroupCommit<string, PortOnePayment | null | undefined>(async (keys) => {
      const found = await ctx.portone.getV1Payments(keys);
      return keys.map((k) => found.get(k));
    }, {
      maxBatch: PAYMENTS_PER_LOOKUP, lingerMs: BACKGROUND_LINGER_MS, key: (k) => k,
      // PortOne refusing the list call (not an outage, which fails the batch for its jobs to retry):
      // each payment is asked alone, so one payment's answer can never decide the others'.
      splitOn: (error) => error instanceof PortOneError && !error.transient,
      writeAlone: (key) => ctx.portone.getPayment('', key),
    });
    lookups.set(ctx, batch);
  }
  return batch;
}

/**
 * fetchPayment, with V1 lookups made together with the other lookups running now (verifications,
 * webhook outcomes, late-payment watches). A payment the shared answer does not include is asked
 * about alone, whose 404 says PortOne does not know it: whatever PortOne leaves out of a list answer
 * is never taken for "unknown".
 */
export async function fetchPaymentShared(ctx: WorkerContext, merchantUid: string, impUid: string): Promise<PortOnePayment | null> {
  if (apiOfPaymentKey(impUid) !== 'v1') return fetchPayment(ctx, merchantUid, impUid);
  let shared: PortOnePayment | null | undefined;
  try {
    shared = await lookupsOf(ctx).submit(impUid);
  } catch (error) {
    throw lookupFailure(error);
  }
  // undefined: the list answer left it out; null: asked alone (the list call was refused), unknown.
  return shared === undefined ? fetchPayment(ctx, merchantUid, impUid) : shared;
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

/**
 * PortOne has spoken about payment `impUid` of the order: an unsigned (V1) confirm may take or renew
 * the order's hold again (placeHold refuses it PAYMENT_UNCHECKED while a hold one took is unchecked: forged
 * confirms alone kept places from buyers for about 43 minutes while PortOne's REST API was down).
 * V2 keys take no such mark.
 */
export async function markChecked(ctx: WorkerContext, eventId: string, merchantUid: string, impUid: string): Promise<void> {
  if (apiOfPaymentKey(impUid) === 'v1') await ctx.store.markChecked(eventId, merchantUid);
}

/** Money PortOne still holds for this payment. */
export function keptAmount(p: PortOnePayment): number {
  return p.status === 'paid' || p.status === 'cancelled' ? Math.max(0, p.amount - p.cancel_amount) : 0;
}
