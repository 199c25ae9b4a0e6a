/**
 * Postgres constraint violations mapped to what they mean, by constraint name, in one place.
 */
export const OVERSELL_CONSTRAINTS: ReadonlySet<string> = new Set([
  'tickets__event_id_seat_id_uq',
  'tickets__event_id_pool_id_serial_uq',
  'tickets__serial_within_capacity_ck',
]);

interface PgError { code?: string; constraint?: string }

/** True when `error` is Postgres refusing a ticket that would oversell a seat or a pool. */
export function isOversellViolation(error: unknown): boolean {
  const e = error as PgError;
  return (e?.code === '23505' || e?.code === '23514') && OVERSELL_CONSTRAINTS.has(e.constraint ?? '');
}

/** True for a unique violation on the named constraint. */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as PgError;
  return e?.code === '23505' && e.constraint === constraint;
}

/** True when Postgres refused a verified buyer's order past ORDERS_PER_BUYER_MAX (migration 0009). */
export function isBuyerOrderLimitViolation(error: unknown): boolean {
  const e = error as PgError;
  return e?.code === '23514' && e.constraint === 'buyer_order_counts__within_max_ck';
}

/** True when Postgres refused an order status change the order state machine does not allow. */
export function isTransitionViolation(error: unknown): boolean {
  const e = error as PgError;
  return e?.code === '23514' && e.constraint === 'orders__status_transition_ck';
}
