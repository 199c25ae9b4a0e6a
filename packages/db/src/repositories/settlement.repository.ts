/**
 * Settlement in batches (issue 10). A worker settles many payments at once (one job per outcome, many
 * jobs in flight); each job used to spend about fifteen Postgres round trips on its own, and the
 * ticket transaction held the pool's row lock across six of them, so one pool's sales were written
 * one after the other. Here concurrent jobs share their round trips (group-commit.ts):
 *
 * - `recordPayment`: what PortOne says of a payment is recorded, and the order and any refund decided
 *   for the payment are read, for every job of the batch in ONE statement;
 * - `commitPaid`: paid orders become paid with their tickets, their live holds committed and their
 *   `paid` log entries, for every job of the batch in ONE transaction (lock the orders, lock their
 *   pools, one statement, commit): pool serials are numbered for the whole batch in that statement.
 *
 * Each order's outcomes stay serialized by its settlement lock (the worker's); a batch never holds two
 * inputs of one payment or one order (`key`). Everything stays idempotent: an order already paid is
 * reported so and left as it is. A batch Postgres refuses for one input (an oversell, a pool whose
 * free serials lie in holes left by voided tickets, a deadlock) is written again one input at a time,
 * through the one-order transaction (`commitPaidOne`), so the others commit and the bad one gets its
 * own error (the worker maps an oversell to a refund).
 */
import { sql, type Transaction } from 'kysely';
import { ORDER_MACHINE } from '@dropgate/domain';
import type { Db } from '../database.ts';
import type { Database, OrderRow } from '../schema.ts';
import { BACKGROUND_LINGER_MS, GroupCommit, isConcurrencyFailure, isIntegrityViolation, perHandle } from './group-commit.ts';
import { endLiveHolds, issueTickets, paymentStatusRank, transition, type PaymentRecord, type RefundRow } from './lifecycle.repository.ts';
import { appendOrderEvent, findOrderLines, lockOrder } from './orders.repository.ts';

/** Jobs per batch at most: bounds a statement's parameters and one transaction's locks. */
export const SETTLEMENT_BATCH_MAX = 128;

/** What settling a payment reads of its order (only these columns: the rest cost parsing for nothing). */
export type SettlementOrder = Pick<OrderRow, 'merchant_uid' | 'event_id' | 'status' | 'amount' | 'currency' | 'paid_imp_uid' | 'hold_expires_at'>;

export interface RecordedPayment {
  /** The order the payment names, when it exists (the payment is recorded only then, and only for its event). */
  order: SettlementOrder | undefined;
  /** The refund decided for this payment, if any. */
  refund: RefundRow | undefined;
}

/**
 * Records what PortOne says of each payment (insert or update; a reading older than the stored one
 * never wins, less cancelled or of an earlier status, as in `lifecycle.upsertPayment`) when its order exists in its event, and reads each
 * payment's order and decided refund, in one statement.
 */
export async function recordPayments(db: Db, payments: readonly PaymentRecord[]): Promise<RecordedPayment[]> {
  if (payments.length === 0) return [];
  const rows = await sql<Record<string, unknown> & { k: number; refund_status: string | null; refund_reason: string | null; refund_amount: number | null }>`/* prepared: record_payments */
    with input as (
      select * from unnest(
        ${payments.map((p) => p.impUid)}::text[], ${payments.map((p) => p.merchantUid)}::text[], ${payments.map((p) => p.eventId)}::text[],
        ${payments.map((p) => p.amount)}::bigint[], ${payments.map((p) => p.cancelAmount)}::bigint[], ${payments.map((p) => p.status)}::text[],
        ${payments.map((p) => p.failReason)}::text[], ${payments.map((p) => p.paidAt?.toISOString() ?? null)}::timestamptz[]
      ) with ordinality as t(imp, m, e, a, ca, st, fr, pa, k)
    ), recorded as (
      insert into payments as p (imp_uid, merchant_uid, event_id, amount, cancel_amount, status, fail_reason, paid_at)
      select i.imp, i.m, i.e, i.a, i.ca, i.st, i.fr, i.pa
      from input i join orders o on o.merchant_uid = i.m and o.event_id = i.e
      on conflict (imp_uid) do update set
        amount = excluded.amount, cancel_amount = excluded.cancel_amount, status = excluded.status,
        fail_reason = excluded.fail_reason, paid_at = excluded.paid_at, updated_at = now()
      where p.cancel_amount <= excluded.cancel_amount and ${paymentStatusRank('excluded.status')} >= ${paymentStatusRank('p.status')}
    )
    select i.k, r.status as refund_status, r.reason as refund_reason, r.amount as refund_amount,
      o.merchant_uid, o.event_id, o.status, o.amount, o.currency, o.paid_imp_uid, o.hold_expires_at
    from input i left join orders o on o.merchant_uid = i.m left join refunds r on r.imp_uid = i.imp
    order by i.k
  `.execute(db);
  return rows.rows.map((row) => {
    const { k: _k, refund_status, refund_reason, refund_amount, ...order } = row;
    return {
      order: order.merchant_uid === null ? undefined : (order as unknown as SettlementOrder),
      refund: refund_status === null ? undefined : { status: refund_status as RefundRow['status'], reason: refund_reason!, amount: Number(refund_amount) },
    };
  });
}

export interface PaidCommit {
  merchantUid: string;
  eventId: string;
  impUid: string;
  /** Logged with the `paid` entry: the amount paid, and how Redis sold the seats. */
  amount: number;
  via: string;
}

export type PaidCommitResult =
  /** `paid`: the order became paid now; `already-paid`: it was paid before (nothing changed). */
  | { result: 'paid' | 'already-paid'; unfinishedPayments: string[] }
  /** The order's status does not allow `paid` (e.g. refunded): nothing changed. */
  | { result: 'refused'; status: string | null };

const PAYABLE: readonly string[] = ORDER_MACHINE.paid.from;

/** Payments of these orders PortOne last reported unfinished (ready or failed), by order. */
async function unfinishedOf(db: Db | Transaction<Database>, merchantUids: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (merchantUids.length === 0) return out;
  const rows = await db.selectFrom('payments').select(['merchant_uid', 'imp_uid'])
    .where('merchant_uid', 'in', [...merchantUids]).where('status', 'in', ['ready', 'failed']).execute();
  for (const r of rows) out.set(r.merchant_uid, [...(out.get(r.merchant_uid) ?? []), r.imp_uid]);
  return out;
}

/**
 * Makes paid, in one transaction, every order of `commits` its status allows: tickets for its seats
 * and pool items (pool serials after the pool's highest), its live holds committed, its status
 * changed through the state machine (the trigger checks and logs it) and a `paid` log entry. Orders
 * are locked in merchant_uid order and pools in (event, pool) order, so concurrent batches (several
 * workers) never deadlock each other.
 */
export async function commitPaidOrders(db: Db, commits: readonly PaidCommit[]): Promise<PaidCommitResult[]> {
  if (commits.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const uids = [...new Set(commits.map((c) => c.merchantUid))].sort();
    const locked = await sql<{ merchant_uid: string; status: string }>`/* prepared: lock_paid_orders */
      select merchant_uid, status from orders where merchant_uid = any(${uids}::text[]) order by merchant_uid for no key update
    `.execute(trx);
    const status = new Map(locked.rows.map((r) => [r.merchant_uid, r.status]));
    const go = commits.filter((c) => PAYABLE.includes(status.get(c.merchantUid) ?? ''));
    // Payments of the orders PortOne last reported unfinished: the caller watches them.
    let unfinished = new Map<string, string[]>();
    if (go.length > 0) {
      const goUids = go.map((c) => c.merchantUid);
      // Pools locked FOR NO KEY UPDATE: commits take serials one after another, while new orders of
      // the pool (whose items' foreign key reads its row, KEY SHARE) go on; FOR UPDATE made every pool
      // order wait for the settlement commit in flight.
      const pools = await sql<{ largest: number }>`/* prepared: lock_paid_pools */
        select p.event_id, p.id, (select max(quantity) from order_items where merchant_uid = any(${goUids}::text[])) as largest
        from pools p
        where (p.event_id, p.id) in (select event_id, pool_id from order_items where merchant_uid = any(${goUids}::text[]))
        order by p.event_id, p.id for no key update
      `.execute(trx);
      // The largest pool quantity of the batch bounds the series each item's places are drawn from: a
      // constant the planner can count (a per-row generate_series is guessed at 1,000 rows each, which
      // priced the statement high enough for a JIT compilation of several hundred milliseconds).
      const largest = pools.rows[0]?.largest ?? 0;
      const paid = await sql<{ merchant_uid: string; imp_uid: string | null }>`/* prepared: commit_paid */
        with batch as (
          select * from unnest(${goUids}::text[], ${go.map((c) => c.impUid)}::text[],
                               ${go.map((c) => JSON.stringify({ imp_uid: c.impUid, amount: c.amount, via: c.via }))}::text[])
          with ordinality as t(m, imp, data, k)
        ), seat_tickets as (
          insert into tickets (event_id, merchant_uid, imp_uid, seat_id)
          select os.event_id, os.merchant_uid, b.imp, os.seat_id from order_seats os join batch b on os.merchant_uid = b.m
        ), lines as (
          select oi.event_id, oi.pool_id, oi.merchant_uid, b.imp,
                 row_number() over (partition by oi.event_id, oi.pool_id order by b.k, g.n) as rn
          from order_items oi join batch b on oi.merchant_uid = b.m join generate_series(1, ${largest}::int) as g(n) on g.n <= oi.quantity
        ), tops as materialized (
          -- The pools are locked: no other transaction adds tickets to them until this one commits.
          -- Once per pool (materialized), read from the serial index's top.
          select l.event_id, l.pool_id,
                 coalesce((select t.serial from tickets t where t.event_id = l.event_id and t.pool_id = l.pool_id
                           order by t.serial desc limit 1), 0) as top
          from (select distinct event_id, pool_id from lines) l
        ), pool_tickets as (
          -- Past the capacity the capacity check refuses the batch; alone, the order's own
          -- transaction then looks for holes left by voided tickets.
          insert into tickets (event_id, merchant_uid, imp_uid, pool_id, pool_capacity, serial)
          select l.event_id, l.merchant_uid, l.imp, l.pool_id, p.capacity, tp.top + l.rn
          from lines l join tops tp on tp.event_id = l.event_id and tp.pool_id = l.pool_id
          join pools p on p.event_id = l.event_id and p.id = l.pool_id
        ), committed as (
          update holds h set status = 'committed', ended_at = now(), end_reason = 'paid'
          from batch b where h.merchant_uid = b.m and h.status = 'live'
        ), paid as (
          update orders o set status = 'paid', status_cause = 'paid', status_reason = null, updated_at = now(),
            hold_expires_at = null, paid_imp_uid = b.imp
          from batch b where o.merchant_uid = b.m and o.status = any(${[...PAYABLE]}::text[])
          returning o.merchant_uid, o.event_id, b.data
        ), logged as (
          -- After the trigger's status entry of each order (it runs as the row is updated).
          insert into order_events (merchant_uid, event_id, type, data) select merchant_uid, event_id, 'paid', data::jsonb from paid
        )
        select p.merchant_uid, null as imp_uid from paid p
        union all
        select pm.merchant_uid, pm.imp_uid from payments pm
        where pm.merchant_uid = any(${uids}::text[]) and pm.status in ('ready', 'failed')
      `.execute(trx);
      const paidNow = paid.rows.filter((r) => r.imp_uid === null).length;
      if (paidNow !== go.length) throw new Error(`paid ${paidNow} of ${go.length} locked payable orders`);
      for (const r of paid.rows) if (r.imp_uid !== null) unfinished.set(r.merchant_uid, [...(unfinished.get(r.merchant_uid) ?? []), r.imp_uid]);
    } else {
      unfinished = await unfinishedOf(trx, uids);
    }
    return commits.map((c): PaidCommitResult => {
      const s = status.get(c.merchantUid) ?? null;
      if (s === 'paid') return { result: 'already-paid', unfinishedPayments: unfinished.get(c.merchantUid) ?? [] };
      if (s === null || !PAYABLE.includes(s)) return { result: 'refused', status: s };
      return { result: 'paid', unfinishedPayments: unfinished.get(c.merchantUid) ?? [] };
    });
  });
}

/**
 * One order made paid in a transaction of its own, statement by statement (pool serials fill holes
 * left by voided tickets when the top is full): what a refused batch falls back to.
 */
export async function commitPaidOne(db: Db, c: PaidCommit): Promise<PaidCommitResult> {
  const lines = await findOrderLines(db, c.merchantUid);
  return db.transaction().execute(async (trx): Promise<PaidCommitResult> => {
    const locked = await lockOrder(trx, c.merchantUid);
    if (locked?.status === 'paid') return { result: 'already-paid', unfinishedPayments: (await unfinishedOf(trx, [c.merchantUid])).get(c.merchantUid) ?? [] };
    if (!locked || !PAYABLE.includes(locked.status)) return { result: 'refused', status: locked?.status ?? null };
    await issueTickets(trx, c.eventId, c.merchantUid, c.impUid, {
      seats: lines.seats.map((s) => s.seat_id),
      items: lines.items.map((i) => ({ pool: i.pool_id, quantity: i.quantity })),
    });
    await endLiveHolds(trx, c.merchantUid, 'committed', 'paid');
    if (!(await transition(trx, c.merchantUid, 'paid', null, { paidImpUid: c.impUid }))) return { result: 'refused', status: locked.status };
    await appendOrderEvent(trx, c.merchantUid, c.eventId, 'paid', { imp_uid: c.impUid, amount: c.amount, via: c.via });
    return { result: 'paid', unfinishedPayments: (await unfinishedOf(trx, [c.merchantUid])).get(c.merchantUid) ?? [] };
  });
}

/** The batching writers of one database handle. */
export interface SettlementWriter {
  recordPayment(p: PaymentRecord): Promise<RecordedPayment>;
  commitPaid(c: PaidCommit): Promise<PaidCommitResult>;
  readonly stats: { record: GroupCommit<PaymentRecord, RecordedPayment>['stats']; commit: GroupCommit<PaidCommit, PaidCommitResult>['stats'] };
  /** Commits waiting for the one in flight (tests and metrics). */
  readonly commitsWaiting: number;
}

const splitOn = (error: unknown) => isIntegrityViolation(error) || isConcurrencyFailure(error);

/** The settlement writer of a database handle (one per handle, made on first use). */
export const settlementWriter = perHandle((db: Db): SettlementWriter => {
  const record = new GroupCommit<PaymentRecord, RecordedPayment>((items) => recordPayments(db, items), {
    maxBatch: SETTLEMENT_BATCH_MAX, key: (p) => p.impUid, splitOn, lingerMs: BACKGROUND_LINGER_MS,
  });
  const commit = new GroupCommit<PaidCommit, PaidCommitResult>((items) => commitPaidOrders(db, items), {
    maxBatch: SETTLEMENT_BATCH_MAX, key: (c) => c.merchantUid, splitOn, writeAlone: (c) => commitPaidOne(db, c),
  });
  return {
    recordPayment: (p) => record.submit(p),
    commitPaid: (c) => commit.submit(c),
    stats: { record: record.stats, commit: commit.stats },
    get commitsWaiting() {
      return commit.waiting;
    },
  };
});
