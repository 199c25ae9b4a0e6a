/**
 * How holds end, in Postgres: holds recorded, tickets issued, payments and refunds recorded, orders
 * moved through their statuses. Functions that lock rows take a Transaction.
 */
import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Db } from '../database.ts';
import type { Database, HoldRow } from '../schema.ts';
import { ORDER_MACHINE, type OrderCause } from '@dropgate/domain';
import { GroupCommit, isConcurrencyFailure, isIntegrityViolation, perHandle } from './group-commit.ts';

type Executor = Db | Transaction<Database>;

export interface HoldRecord {
  holdId: string;
  merchantUid: string;
  eventId: string;
  impUid: string;
  seq: number;
  expiresAt: Date;
}

type HoldStatus = 'live' | 'committed' | 'expired' | 'released';

/** Holds recorded in one statement at most (concurrent recordings share it: group commit). */
export const HOLD_BATCH_MAX = 256;

/**
 * Records a hold (idempotent: the hold id is the order and its hold number). For a live hold, earlier
 * holds of the order are superseded and the order moves to `held` unless it has moved on. The worker
 * runs it once per approved confirm; recordings in flight at once share one statement and its commit
 * (each one atomic in it: its hold, the superseding, the order's move and its log entry), so a drop's
 * holds cost Postgres a statement per batch, not one each. Two holds of one order never share a
 * statement.
 * @returns true when this call recorded the hold.
 */
export function recordHold(db: Db, h: HoldRecord, status: HoldStatus): Promise<boolean> {
  return holdRecorder(db).submit({ ...h, status });
}

type HoldItem = HoldRecord & { status: HoldStatus };

/** Statements written and holds in them so far for this database handle (tests and metrics). */
export function holdRecordingStats(db: Db): { statements: number; items: number; largestBatch: number } {
  return holdRecorder(db).stats;
}

const holdRecorder = perHandle((db: Db) => new GroupCommit<HoldItem, boolean>((items) => recordHolds(db, items), {
  maxBatch: HOLD_BATCH_MAX,
  key: (h) => h.merchantUid,
  splitOn: (error) => isIntegrityViolation(error) || isConcurrencyFailure(error),
}));

async function recordHolds(db: Db, items: readonly HoldItem[]): Promise<boolean[]> {
  const result = await sql<{ hold_id: string; recorded: boolean }>`/* prepared: record_holds */
    with input as (
      select * from unnest(
        ${items.map((h) => h.holdId)}::text[], ${items.map((h) => h.merchantUid)}::text[], ${items.map((h) => h.eventId)}::text[],
        ${items.map((h) => h.impUid)}::text[], ${items.map((h) => h.seq)}::int[], ${items.map((h) => h.status)}::text[],
        ${items.map((h) => h.expiresAt.toISOString())}::timestamptz[],
        ${items.map((h) => JSON.stringify({ seq: h.seq, imp_uid: h.impUid, expires_at: h.expiresAt.toISOString(), status: h.status }))}::text[]
      ) as t(hold_id, merchant_uid, event_id, imp_uid, seq, status, expires_at, data)
    ), ins as (
      insert into holds (hold_id, merchant_uid, event_id, imp_uid, seq, status, expires_at, ended_at, end_reason)
      -- An order already paid (its payment was committed while this hold was on its way) gets its
      -- hold recorded as committed, never live.
      select i.hold_id, i.merchant_uid, i.event_id, i.imp_uid, i.seq,
        case when exists (select 1 from orders o where o.merchant_uid = i.merchant_uid and o.status = 'paid') then 'committed' else i.status end,
        i.expires_at,
        case when i.status in ('expired', 'released') then now() end,
        case when i.status in ('expired', 'released') then 'ended before it was recorded' end
      from input i
      on conflict (hold_id) do nothing
      returning hold_id
    ), recorded as (
      select i.* from input i join ins using (hold_id)
    ), superseded as (
      update holds h set status = 'expired', ended_at = now(), end_reason = 'superseded'
      from recorded r
      where r.status = 'live' and h.merchant_uid = r.merchant_uid and h.status = 'live' and h.seq < r.seq
    ), held as (
      -- Through the state machine: a status change names its cause (held -> held keeps its own).
      update orders o set status = 'held', hold_expires_at = r.expires_at, status_reason = null, updated_at = now(),
        status_cause = case when o.status = 'held' then o.status_cause else 'hold_taken' end
      from recorded r
      where r.status = 'live' and o.merchant_uid = r.merchant_uid and o.status in ('pending', 'held', 'released', 'expired')
    ), logged as (
      insert into order_events (merchant_uid, event_id, type, data)
      select r.merchant_uid, r.event_id, 'hold_recorded', r.data::jsonb from recorded r
    )
    select i.hold_id, exists (select 1 from ins where ins.hold_id = i.hold_id) as recorded from input i
  `.execute(db);
  const recorded = new Map(result.rows.map((r) => [r.hold_id, r.recorded]));
  return items.map((h) => recorded.get(h.holdId) ?? false);
}

/**
 * The order's live hold now ends at `expiresAt` (a reservation that went back to its own, earlier
 * expiry when a payment on it was not real): its hold row and the order follow Redis, so readers and a
 * rebuild see when it really ends.
 */
export async function setLiveHoldExpiry(db: Db, merchantUid: string, expiresAt: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('holds').set({ expires_at: expiresAt }).where('merchant_uid', '=', merchantUid).where('status', '=', 'live').execute();
    await trx.updateTable('orders').set({ hold_expires_at: expiresAt, updated_at: new Date() })
      .where('merchant_uid', '=', merchantUid).where('status', '=', 'held').execute();
  });
}

/** Ends the order's live holds with the given status. */
export async function endLiveHolds(db: Executor, merchantUid: string, status: 'committed' | 'released' | 'expired', reason: string): Promise<number> {
  const res = await db
    .updateTable('holds')
    .set({ status, ended_at: new Date(), end_reason: reason })
    .where('merchant_uid', '=', merchantUid)
    .where('status', '=', 'live')
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export function liveHoldsOverdue(db: Db, before: Date, limit: number): Promise<HoldRow[]> {
  return db.selectFrom('holds').selectAll().where('status', '=', 'live').where('expires_at', '<=', before).orderBy('expires_at').limit(limit).execute();
}

export interface PaymentRecord {
  impUid: string;
  merchantUid: string;
  eventId: string;
  amount: number;
  cancelAmount: number;
  status: string;
  failReason: string | null;
  paidAt: Date | null;
}

/**
 * Where a payment status lies along a payment's life, ready < failed < paid < cancelled (failed then
 * paid is how some PGs report a payment), as SQL over `column`: a reading of an earlier status than the
 * stored one is stale. A status of none of these (PortOne adding one) ranks below them all: it never
 * overwrites a known one, and any known one overwrites it.
 */
export function paymentStatusRank(column: 'excluded.status' | 'payments.status' | 'p.status'): RawBuilder<number> {
  return sql.raw<number>(`(case ${column} when 'ready' then 0 when 'failed' then 1 when 'paid' then 2 when 'cancelled' then 3 else -1 end)`);
}

/**
 * Inserts or updates what PortOne says of a payment. A reading older than the stored one never wins:
 * PortOne's refunded amount only grows and a payment's status only moves forward (paymentStatusRank),
 * so a stale reading (fetched before a refund another job made, or before the buyer finished paying,
 * and written after the job that ticketed it: attack round 28A) leaves the row as it is. A `ready`
 * written over `paid` made the ledger sweep count the payment's later cancel at the console as settled
 * (it settles a cancelled payment only when the record has it paid): its tickets stayed, without money.
 */
export async function upsertPayment(db: Executor, p: PaymentRecord): Promise<void> {
  await db
    .insertInto('payments')
    .values({
      imp_uid: p.impUid, merchant_uid: p.merchantUid, event_id: p.eventId, amount: p.amount, cancel_amount: p.cancelAmount,
      status: p.status, fail_reason: p.failReason, paid_at: p.paidAt,
    })
    .onConflict((oc) =>
      oc.column('imp_uid')
        .doUpdateSet({
          amount: p.amount, cancel_amount: p.cancelAmount, status: p.status, fail_reason: p.failReason, paid_at: p.paidAt, updated_at: new Date(),
        })
        .where((eb) => eb.and([
          eb('payments.cancel_amount', '<=', eb.ref('excluded.cancel_amount')),
          sql<boolean>`${paymentStatusRank('excluded.status')} >= ${paymentStatusRank('payments.status')}`,
        ])),
    )
    .execute();
}

export interface TicketLines {
  seats: string[];
  items: { pool: string; quantity: number }[];
}

/**
 * Issues an order's tickets: one per seat, and for each pool item the lowest free serials of the pool
 * (the pool row is locked so two orders do not pick the same serials; FOR NO KEY UPDATE, so new orders
 * of the pool do not wait for it). Postgres's constraints refuse an
 * oversell; the caller maps that error.
 */
export async function issueTickets(trx: Transaction<Database>, eventId: string, merchantUid: string, impUid: string, lines: TicketLines): Promise<number> {
  let issued = 0;
  if (lines.seats.length > 0) {
    await trx
      .insertInto('tickets')
      .values(lines.seats.map((seat) => ({ event_id: eventId, merchant_uid: merchantUid, imp_uid: impUid, seat_id: seat })))
      .execute();
    issued += lines.seats.length;
  }
  for (const item of lines.items) {
    const pool = await trx.selectFrom('pools').select(['capacity']).where('event_id', '=', eventId).where('id', '=', item.pool).forNoKeyUpdate().executeTakeFirstOrThrow();
    // Serials are handed out after the highest one (an index lookup); only when that would pass the
    // capacity are the holes left by voided tickets searched.
    const top = await sql<{ max: number | null }>`
      select max(serial) as max from tickets where event_id = ${eventId} and pool_id = ${item.pool}
    `.execute(trx);
    const highest = top.rows[0]?.max ?? 0;
    let serials: number[];
    if (highest + item.quantity <= pool.capacity) {
      serials = Array.from({ length: item.quantity }, (_, i) => highest + i + 1);
    } else {
      const free = await sql<{ serial: number }>`
        select s as serial from generate_series(1, ${pool.capacity}::int) s
        where not exists (select 1 from tickets t where t.event_id = ${eventId} and t.pool_id = ${item.pool} and t.serial = s)
        order by s limit ${item.quantity}
      `.execute(trx);
      serials = free.rows.map((r) => r.serial);
      // Fewer free serials than asked: claim past the capacity so the capacity check refuses it.
      while (serials.length < item.quantity) serials.push(pool.capacity + serials.length + 1);
    }
    await trx
      .insertInto('tickets')
      .values(serials.map((serial) => ({ event_id: eventId, merchant_uid: merchantUid, imp_uid: impUid, pool_id: item.pool, pool_capacity: pool.capacity, serial })))
      .execute();
    issued += item.quantity;
  }
  return issued;
}

export async function voidTickets(db: Executor, merchantUid: string): Promise<number> {
  const res = await db.deleteFrom('tickets').where('merchant_uid', '=', merchantUid).executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * Moves an order along the state machine (ORDER_MACHINE in @dropgate/domain) for `cause`, when its
 * current status allows that cause; otherwise changes nothing (the order has moved on: a late or
 * repeated outcome). Postgres checks the change again by trigger and logs it with its cause.
 * @returns true when the order changed status.
 */
export async function transition(
  db: Executor, merchantUid: string, cause: OrderCause, reason: string | null, extra: { paidImpUid?: string } = {},
): Promise<boolean> {
  const t = ORDER_MACHINE[cause];
  const res = await db
    .updateTable('orders')
    .set({
      status: t.to,
      status_cause: cause,
      status_reason: reason,
      updated_at: new Date(),
      hold_expires_at: null,
      ...(extra.paidImpUid !== undefined ? { paid_imp_uid: extra.paidImpUid } : {}),
    })
    .where('merchant_uid', '=', merchantUid)
    .where('status', 'in', [...t.from])
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/**
 * Payments of an order that PortOne last reported unfinished (ready, or failed: some PGs turn failed
 * into paid). The record keeps every verified payment, so this survives Redis losing its data.
 */
export async function unfinishedPayments(db: Executor, merchantUid: string): Promise<string[]> {
  const rows = await db.selectFrom('payments').select('imp_uid').where('merchant_uid', '=', merchantUid).where('status', 'in', ['ready', 'failed']).execute();
  return rows.map((r) => r.imp_uid);
}

/** Every payment of an order the record has (verified or settled ones). */
export async function paymentsOfOrder(db: Executor, merchantUid: string): Promise<string[]> {
  const rows = await db.selectFrom('payments').select('imp_uid').where('merchant_uid', '=', merchantUid).execute();
  return rows.map((r) => r.imp_uid);
}

export interface RefundRow { status: 'requested' | 'done'; reason: string; amount: number }

/** The refund decided for a payment, if any. */
export async function findRefund(db: Executor, impUid: string): Promise<RefundRow | undefined> {
  const row = await db.selectFrom('refunds').select(['status', 'reason', 'amount']).where('imp_uid', '=', impUid).executeTakeFirst();
  return row ? { status: row.status as RefundRow['status'], reason: row.reason, amount: Number(row.amount) } : undefined;
}

/** Refunds decided for any payment of an order. */
export async function refundsOfOrder(db: Executor, merchantUid: string): Promise<(RefundRow & { imp_uid: string })[]> {
  const rows = await db.selectFrom('refunds').select(['imp_uid', 'status', 'reason', 'amount']).where('merchant_uid', '=', merchantUid).execute();
  return rows.map((r) => ({ imp_uid: r.imp_uid, status: r.status as RefundRow['status'], reason: r.reason, amount: Number(r.amount) }));
}

/**
 * Claims the right to refund a payment once. A refund claimed and not done yet takes the amount of the
 * new claim: what is left to refund when it is tried again (a cancel at PortOne's console since the last
 * try leaves less; attack round 14 saw the record keep the first try's amount). @returns false when a
 * refund was already done.
 */
export async function claimRefund(db: Db, r: { impUid: string; merchantUid: string; eventId: string; amount: number; reason: string }): Promise<boolean> {
  await db
    .insertInto('refunds')
    .values({ imp_uid: r.impUid, merchant_uid: r.merchantUid, event_id: r.eventId, amount: r.amount, reason: r.reason, status: 'requested' })
    .onConflict((oc) => oc.column('imp_uid').doUpdateSet({ amount: (eb) => eb.ref('excluded.amount') }).where('refunds.status', '=', 'requested'))
    .execute();
  const row = await db.selectFrom('refunds').select('status').where('imp_uid', '=', r.impUid).executeTakeFirstOrThrow();
  return row.status === 'requested';
}

/**
 * Refunds claimed before `before` and not done: their cancel failed (PortOne refusing or down) and their
 * job is waiting out a long backoff, failed for good, or was lost. Oldest first (the `refunds` table
 * holds one row per refunded payment, few next to the orders).
 */
export function refundsStuck(db: Db, before: Date, limit: number): Promise<{ imp_uid: string; merchant_uid: string; event_id: string }[]> {
  return db.selectFrom('refunds').select(['imp_uid', 'merchant_uid', 'event_id'])
    .where('status', '=', 'requested').where('created_at', '<', before).orderBy('created_at').limit(limit).execute();
}

export async function markRefundDone(db: Db, impUid: string): Promise<void> {
  await db.updateTable('refunds').set({ status: 'done', done_at: new Date() }).where('imp_uid', '=', impUid).execute();
}
