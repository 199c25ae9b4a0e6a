/** Everything the checks look at, read once from Postgres, Redis, the API and PortOne's ledger. */
import { HoldStore, type EventCounts, type SeatOwner } from '@dropgate/redis';
import { ledgerOf, type PortOneLedger } from './ledger.ts';
import type { InvariantInputs } from './types.ts';

export interface OrderRow {
  merchant_uid: string;
  buyer_id: string;
  status: string;
  status_reason: string | null;
  amount: number;
  currency: string;
  paid_imp_uid: string | null;
}
export interface TicketRow {
  merchant_uid: string;
  imp_uid: string;
  seat_id: string | null;
  pool_id: string | null;
  serial: number | null;
}
/** A payment as the record keeps it (Postgres `payments`, or `GET /orders/:merchant_uid`). */
export interface RecordedPayment {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  cancel_amount: number;
  status: string;
}

/** An order as `GET /orders/:merchant_uid` shows it, or why it could not be read. */
export type ApiOrderView =
  | { ok: true; status: string; payments: { imp_uid: string; amount: number; cancel_amount: number; status: string }[]; tickets: number }
  | { ok: false; error: string };

interface ApiAvailability {
  pools: { id: string; capacity: number; available: number; held: number; sold: number }[];
  seats: { total: number; available: number; held: number; sold: number };
}

/** Everything the checks look at, read once. */
export interface State {
  pools: { id: string; capacity: number }[];
  seatCount: number;
  orders: OrderRow[];
  orderByUid: Map<string, OrderRow>;
  seatsOf: Map<string, string[]>;
  itemsOf: Map<string, Map<string, number>>;
  tickets: TicketRow[];
  liveHolds: { merchant_uid: string; hold_id: string }[];
  refunds: { imp_uid: string; merchant_uid: string; status: string; reason: string }[];
  /** Redis's counters (null: Redis has no counters for the event). */
  redisCounts: EventCounts | null;
  redisSeats: Map<string, SeatOwner>;
  redisHolds: number;
  redisBuyers: Map<string, number>;
  redisOrderStatus: Map<string, string | null>;
  availability: ApiAvailability | null;
  availabilityError: string | null;
  ledger: PortOneLedger;
  /** Read only for the record check (5): Postgres payment rows and the API's view of each order. */
  paymentRows: RecordedPayment[];
  apiOrders: Map<string, ApiOrderView> | null;
}

/** Reads everything once; with `record`, also payment rows and (given the admin token) each order via the API. */
export async function readState(inputs: InvariantInputs, opts: { record?: boolean } = {}): Promise<State> {
  const { db, redis, eventId } = inputs;
  const [pools, seatCount, orders, orderSeats, orderItems, tickets, liveHolds, refunds] = await Promise.all([
    db.selectFrom('pools').select(['id', 'capacity']).where('event_id', '=', eventId).execute(),
    db.selectFrom('seats').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', eventId).executeTakeFirstOrThrow(),
    db.selectFrom('orders').select(['merchant_uid', 'buyer_id', 'status', 'status_reason', 'amount', 'currency', 'paid_imp_uid']).where('event_id', '=', eventId).execute(),
    db.selectFrom('order_seats').select(['merchant_uid', 'seat_id']).where('event_id', '=', eventId).execute(),
    db.selectFrom('order_items').select(['merchant_uid', 'pool_id', 'quantity']).where('event_id', '=', eventId).execute(),
    db.selectFrom('tickets').select(['merchant_uid', 'imp_uid', 'seat_id', 'pool_id', 'serial']).where('event_id', '=', eventId).execute(),
    db.selectFrom('holds').select(['merchant_uid', 'hold_id']).where('event_id', '=', eventId).where('status', '=', 'live').execute(),
    db.selectFrom('refunds').select(['imp_uid', 'merchant_uid', 'status', 'reason']).where('event_id', '=', eventId).execute(),
  ]);
  const seatsOf = new Map<string, string[]>();
  for (const s of orderSeats) {
    const list = seatsOf.get(s.merchant_uid) ?? [];
    list.push(s.seat_id);
    seatsOf.set(s.merchant_uid, list);
  }
  const itemsOf = new Map<string, Map<string, number>>();
  for (const i of orderItems) {
    const m = itemsOf.get(i.merchant_uid) ?? new Map<string, number>();
    m.set(i.pool_id, (m.get(i.pool_id) ?? 0) + i.quantity);
    itemsOf.set(i.merchant_uid, m);
  }

  // Redis is read through its own package: only @dropgate/redis knows its keys and fields.
  const store = new HoldStore(redis);
  const [inventories, redisSeats, redisBuyers, redisOrderStatus] = await Promise.all([
    store.inventories([eventId]),
    store.seatOwners(eventId),
    store.buyerTickets(eventId),
    store.orderStatuses(eventId, orders.map((o) => o.merchant_uid)),
  ]);
  const inventory = inventories.get(eventId) ?? null;
  const redisCounts: EventCounts | null = inventory ? { seats: inventory.seats, pools: inventory.pools } : null;
  const redisHolds = inventory?.liveHolds ?? 0;

  let availability: ApiAvailability | null = null;
  let availabilityError: string | null = null;
  try {
    // Read afresh: the API may serve a page it read up to READ_CACHE_MS ago.
    const res = await fetch(`${inputs.apiUrl}/events/${encodeURIComponent(eventId)}`, { headers: { 'cache-control': 'no-cache' } });
    const body = (await res.json()) as { availability?: ApiAvailability; code?: string };
    if (res.status !== 200 || !body.availability) availabilityError = `GET /events/${eventId} answered ${res.status} ${body.code ?? 'without availability'}`;
    else availability = body.availability;
  } catch (error) {
    availabilityError = `GET /events/${eventId} failed: ${(error as Error).message}`;
  }

  return {
    pools,
    seatCount: Number(seatCount.n),
    orders,
    orderByUid: new Map(orders.map((o) => [o.merchant_uid, o])),
    seatsOf,
    itemsOf,
    tickets,
    liveHolds,
    refunds,
    redisCounts,
    redisSeats,
    redisHolds,
    redisBuyers,
    redisOrderStatus,
    availability,
    availabilityError,
    ledger: ledgerOf(inputs.ledger, eventId),
    paymentRows: opts.record
      ? await db.selectFrom('payments').select(['imp_uid', 'merchant_uid', 'amount', 'cancel_amount', 'status']).where('event_id', '=', eventId).execute()
      : [],
    apiOrders: opts.record && inputs.adminToken ? await readApiOrders(inputs.apiUrl, inputs.adminToken, orders.map((o) => o.merchant_uid)) : null,
  };
}

/** `GET /orders/:merchant_uid` of each order, a few at a time. */
async function readApiOrders(apiUrl: string, adminToken: string, merchantUids: readonly string[]): Promise<Map<string, ApiOrderView>> {
  const out = new Map<string, ApiOrderView>();
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(8, merchantUids.length) }, async () => {
    while (next < merchantUids.length) {
      const muid = merchantUids[next++]!;
      try {
        const res = await fetch(`${apiUrl}/orders/${encodeURIComponent(muid)}`, { headers: { authorization: `Bearer ${adminToken}` } });
        const body = (await res.json()) as { status?: string; payments?: { imp_uid: string; amount: number; cancel_amount: number; status: string }[]; tickets?: unknown[]; code?: string };
        if (res.status !== 200 || typeof body.status !== 'string') out.set(muid, { ok: false, error: `GET /orders/${muid} answered ${res.status} ${body.code ?? ''}`.trim() });
        else out.set(muid, { ok: true, status: body.status, payments: body.payments ?? [], tickets: body.tickets?.length ?? 0 });
      } catch (error) {
        out.set(muid, { ok: false, error: `GET /orders/${muid} failed: ${(error as Error).message}` });
      }
    }
  }));
  return out;
}

export const num = (v: string | undefined): number => Number(v ?? 0);

export function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export function ticketsPerOrder(s: State, muid: string): number {
  let n = s.seatsOf.get(muid)?.length ?? 0;
  for (const q of s.itemsOf.get(muid)?.values() ?? []) n += q;
  return n;
}
