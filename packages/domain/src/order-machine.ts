/**
 * The order's lifecycle, written once. Every change of an order's status names its cause; each cause
 * is allowed from a fixed set of statuses and leads to one status. Postgres holds the same table
 * (`order_transitions`, written by migration 0002) and refuses any other change by trigger, as it
 * refuses an oversell; a test checks the two tables agree.
 *
 * ```
 * pending ─hold_taken─▶ held ─paid─▶ paid ─cancelled_at_portone─▶ refunded
 *    │                   │ ├─payment_failed | payment_cancelled | payment_unverified─▶ released ─┐
 *    │                   │ └─hold_expired─▶ expired ─────────────────────────────────────────────┤
 *    │                   └─refund_*─▶ refunded                                                    │
 *    └─paid (a PG that skips confirm) ◀── released | expired take a new hold or a late payment ◀─┘
 * ```
 * `refunded` is final: no confirm, webhook or job moves a refunded order again.
 */
import type { OrderStatus } from './order.ts';

export const OrderCauses = [
  'hold_taken',
  'paid',
  'payment_failed',
  'payment_cancelled',
  'payment_unverified',
  'hold_expired',
  'hold_reconciled',
  'refund_amount_mismatch',
  'refund_seats_gone',
  'refund_oversell_prevented',
  'refund_buyer_limit',
  'cancelled_at_portone',
] as const;
export type OrderCause = (typeof OrderCauses)[number];

export interface OrderTransition {
  readonly from: readonly OrderStatus[];
  readonly to: OrderStatus;
}

/** Statuses an order may still take a hold or a payment from. */
const OPEN: readonly OrderStatus[] = ['pending', 'held', 'released', 'expired'];
/** A hold ends from `held`, or from `pending` when it ended before the worker recorded it. */
const HOLDING: readonly OrderStatus[] = ['pending', 'held'];

export const ORDER_MACHINE: Readonly<Record<OrderCause, OrderTransition>> = Object.freeze({
  hold_taken: { from: ['pending', 'released', 'expired'], to: 'held' },
  paid: { from: OPEN, to: 'paid' },
  payment_failed: { from: HOLDING, to: 'released' },
  payment_cancelled: { from: HOLDING, to: 'released' },
  payment_unverified: { from: HOLDING, to: 'released' },
  hold_expired: { from: HOLDING, to: 'expired' },
  /** The hold ended in Redis (released) but the record missed the change: it follows (migration 0004). */
  hold_reconciled: { from: HOLDING, to: 'released' },
  refund_amount_mismatch: { from: OPEN, to: 'refunded' },
  refund_seats_gone: { from: OPEN, to: 'refunded' },
  refund_oversell_prevented: { from: OPEN, to: 'refunded' },
  /** Paid without a live hold past the event's max_per_buyer (migration 0013). */
  refund_buyer_limit: { from: OPEN, to: 'refunded' },
  cancelled_at_portone: { from: ['paid'], to: 'refunded' },
});

/** The status `cause` leads to from `from`, or null when the machine does not allow it. */
export function nextStatus(from: OrderStatus, cause: OrderCause): OrderStatus | null {
  const t = ORDER_MACHINE[cause];
  return t.from.includes(from) ? t.to : null;
}

/** Every allowed (cause, from, to) triple: the rows of Postgres's `order_transitions`. */
export function transitionRows(): { cause: OrderCause; from: OrderStatus; to: OrderStatus }[] {
  return OrderCauses.flatMap((cause) => ORDER_MACHINE[cause].from.map((from) => ({ cause, from, to: ORDER_MACHINE[cause].to })));
}
