/**
 * Frozen. The order state machine, enforced by Postgres. An order is created `pending`; every later
 * change of its status must name a cause (`orders.status_cause`) that `order_transitions` allows from
 * the current status, or the update is refused (`orders__status_transition_ck`), as an oversell is.
 * Each change appends `{from, to, cause, reason}` to the append-only `order_events` log, in the same
 * statement, so the log cannot miss one. The table mirrors `ORDER_MACHINE` in @dropgate/domain (a
 * test checks they agree); a later change to the machine is a new migration.
 */
import { sql, type Kysely } from 'kysely';

const ROWS: [cause: string, from: string, to: string][] = [
  ['hold_taken', 'pending', 'held'], ['hold_taken', 'released', 'held'], ['hold_taken', 'expired', 'held'],
  ['paid', 'pending', 'paid'], ['paid', 'held', 'paid'], ['paid', 'released', 'paid'], ['paid', 'expired', 'paid'],
  ['payment_failed', 'pending', 'released'], ['payment_failed', 'held', 'released'],
  ['payment_cancelled', 'pending', 'released'], ['payment_cancelled', 'held', 'released'],
  ['payment_unverified', 'pending', 'released'], ['payment_unverified', 'held', 'released'],
  ['hold_expired', 'pending', 'expired'], ['hold_expired', 'held', 'expired'],
  ['refund_amount_mismatch', 'pending', 'refunded'], ['refund_amount_mismatch', 'held', 'refunded'],
  ['refund_amount_mismatch', 'released', 'refunded'], ['refund_amount_mismatch', 'expired', 'refunded'],
  ['refund_seats_gone', 'pending', 'refunded'], ['refund_seats_gone', 'held', 'refunded'],
  ['refund_seats_gone', 'released', 'refunded'], ['refund_seats_gone', 'expired', 'refunded'],
  ['refund_oversell_prevented', 'pending', 'refunded'], ['refund_oversell_prevented', 'held', 'refunded'],
  ['refund_oversell_prevented', 'released', 'refunded'], ['refund_oversell_prevented', 'expired', 'refunded'],
  ['cancelled_at_portone', 'paid', 'refunded'],
];

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table order_transitions (
      cause text not null,
      from_status text not null,
      to_status text not null,
      constraint order_transitions__pk primary key (cause, from_status)
    );
    alter table orders add column status_cause text;
    alter table orders add constraint orders__created_pending_ck check (status <> 'pending' or status_cause is null);
  `.execute(db);
  for (const [cause, from, to] of ROWS) {
    await sql`insert into order_transitions (cause, from_status, to_status) values (${cause}, ${from}, ${to})`.execute(db);
  }
  await sql`
    create function orders__status_transition() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        if new.status <> 'pending' then
          raise exception 'order % must be created pending, not %', new.merchant_uid, new.status
            using errcode = 'check_violation', constraint = 'orders__status_transition_ck';
        end if;
        return new;
      end if;
      if new.status is distinct from old.status then
        if not exists (
          select 1 from order_transitions t
          where t.cause = new.status_cause and t.from_status = old.status and t.to_status = new.status
        ) then
          raise exception 'order % cannot go from % to % (cause %)', new.merchant_uid, old.status, new.status, coalesce(new.status_cause, 'none')
            using errcode = 'check_violation', constraint = 'orders__status_transition_ck';
        end if;
        insert into order_events (merchant_uid, event_id, type, data)
        values (new.merchant_uid, new.event_id, 'status', jsonb_build_object(
          'from', old.status, 'to', new.status, 'cause', new.status_cause, 'reason', new.status_reason));
      elsif new.status_cause is distinct from old.status_cause then
        raise exception 'order % cause changed without a status change', new.merchant_uid
          using errcode = 'check_violation', constraint = 'orders__status_transition_ck';
      end if;
      return new;
    end $$;
    create trigger orders__status_transition_tg before insert or update on orders
      for each row execute function orders__status_transition();
  `.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
    drop trigger if exists orders__status_transition_tg on orders;
    drop function if exists orders__status_transition();
    alter table orders drop constraint if exists orders__created_pending_ck;
    alter table orders drop column if exists status_cause;
    drop table if exists order_transitions;
  `.execute(db);
}
