/**
 * 5. The record tells the truth (design.md, invariant 8): each order's final status and payment rows
 * agree with PortOne's ledger.
 *
 * - paid ⇔ tickets: a paid order has exactly one payment PortOne still holds, of the order's amount,
 *   and it is the one the order names; any other order has no tickets.
 * - refunded ⇔ money returned exactly once: a refunded order has money that moved, and PortOne holds
 *   none of it any more; an order whose payment dropgate refunded says refunded (unless another
 *   payment of it is the one it is paid with: a duplicate; or the refunded payment was of another
 *   amount than the order's: it could never pay the order, and its refund leaves the order open).
 * - expired / released / pending ⇔ no money kept.
 * - Payment rows (Postgres, and `GET /orders/:merchant_uid` when the admin token is given) show each
 *   payment's money as PortOne does: paid, cancelled or never paid, the amount, the cancelled amount;
 *   every payment whose money moved has one. `ready` and `failed` both mean "no money" and are not
 *   told apart: PortOne sends no webhook for an ordinary failure, so a row may keep `ready` for an
 *   attempt that failed after another payment settled the order.
 *
 * Checks 1-4 already report what they cover (a payment refunded twice, tickets without a paid
 * payment); this one reads the same state from the order's side.
 */
import { cancelCounts, couldPayOrder, moneyKept, type LedgerPayment } from './ledger.ts';
import { push, ticketsPerOrder, type RecordedPayment, type State } from './state.ts';
import { Findings, result, type InvariantResult } from './types.ts';

const FINAL_UNPAID = new Set(['expired', 'released', 'pending']);
const KNOWN = new Set(['pending', 'held', 'paid', 'released', 'expired', 'refunded']);

const won = (n: number) => `₩${n.toLocaleString('en-US')}`;

/** What a payment status says about the money: never taken, taken, or (partly) returned. */
const money = (status: string): string => (status === 'ready' || status === 'failed' ? 'none' : status);

function differs(row: Pick<RecordedPayment, 'amount' | 'cancel_amount' | 'status'>, p: LedgerPayment): string | null {
  const diffs: string[] = [];
  if (money(row.status) !== money(p.status)) diffs.push(`status ${row.status} (PortOne: ${p.status})`);
  if (Number(row.amount) !== p.amount) diffs.push(`amount ${row.amount} (PortOne: ${p.amount})`);
  if (Number(row.cancel_amount) !== p.cancel_amount) diffs.push(`cancel_amount ${row.cancel_amount} (PortOne: ${p.cancel_amount})`);
  return diffs.length > 0 ? diffs.join(', ') : null;
}

export function checkRecord(s: State): InvariantResult {
  const f = new Findings();
  const { api: apiCancels, consoleAmount } = cancelCounts(s.ledger);
  const paymentsOf = new Map<string, LedgerPayment[]>();
  for (const p of s.ledger.payments) push(paymentsOf, p.merchant_uid, p);
  const paymentByImp = new Map(s.ledger.payments.map((p) => [p.imp_uid, p]));
  const ticketsOf = new Map<string, number>();
  for (const t of s.tickets) ticketsOf.set(t.merchant_uid, (ticketsOf.get(t.merchant_uid) ?? 0) + 1);
  const rowByImp = new Map(s.paymentRows.map((r) => [r.imp_uid, r]));
  const byStatus = new Map<string, number>();

  for (const o of s.orders) {
    byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    const pays = paymentsOf.get(o.merchant_uid) ?? [];
    const kept = pays.filter(moneyKept);
    const moved = pays.filter((p) => p.paid_at > 0);
    // Refunds that speak for the order: a payment of another price (or cancelled in part at PortOne
    // before it paid the order) is refunded on its own.
    const refundedByUs = pays.filter((p) => (apiCancels.get(p.imp_uid) ?? 0) > 0 && couldPayOrder(p, o, consoleAmount));
    const tickets = ticketsOf.get(o.merchant_uid) ?? 0;
    const reason = o.status_reason ? ` ("${o.status_reason}")` : '';
    if (!KNOWN.has(o.status)) f.add(`order ${o.merchant_uid} has status ${o.status}, which is not a state of the order machine`);
    if (o.status === 'paid') {
      const mine = kept.find((p) => p.imp_uid === o.paid_imp_uid);
      if (mine && mine.amount !== o.amount) f.add(`order ${o.merchant_uid} is paid with ${mine.imp_uid} of ${won(mine.amount)}, but the order costs ${won(o.amount)}`);
      if (tickets !== ticketsPerOrder(s, o.merchant_uid)) f.add(`order ${o.merchant_uid} is paid with ${tickets} tickets for ${ticketsPerOrder(s, o.merchant_uid)} places`);
    } else if (o.status === 'refunded') {
      if (moved.length === 0) f.add(`order ${o.merchant_uid} is refunded${reason} but PortOne never took money for it`);
      for (const p of kept) f.add(`order ${o.merchant_uid} is refunded${reason} but PortOne still holds ${won(p.amount)} of payment ${p.imp_uid}`);
      if (tickets > 0) f.add(`order ${o.merchant_uid} is refunded but has ${tickets} tickets`);
    } else if (FINAL_UNPAID.has(o.status)) {
      for (const p of kept) f.add(`order ${o.merchant_uid} is ${o.status}${reason} but PortOne keeps ${won(p.amount)} of payment ${p.imp_uid}: money without tickets or refund`);
      for (const p of refundedByUs) f.add(`order ${o.merchant_uid} is ${o.status}${reason} but dropgate refunded its payment ${p.imp_uid} (${won(p.amount)}): the record should say refunded`);
      if (tickets > 0) f.add(`order ${o.merchant_uid} is ${o.status} but has ${tickets} tickets`);
    }

    // Payment rows as PortOne has them.
    for (const p of moved) {
      const row = rowByImp.get(p.imp_uid);
      if (!row) f.add(`PortOne took ${won(p.amount)} with payment ${p.imp_uid} of order ${o.merchant_uid} (now ${p.status}), but the record has no row of it`);
    }
    const view = s.apiOrders?.get(o.merchant_uid);
    if (view && !view.ok) f.add(view.error);
    else if (view && view.ok) {
      if (view.status !== o.status) f.add(`GET /orders/${o.merchant_uid} says ${view.status}, Postgres says ${o.status}`);
      if (view.tickets !== tickets) f.add(`GET /orders/${o.merchant_uid} shows ${view.tickets} tickets, Postgres has ${tickets}`);
      for (const vp of view.payments) {
        const p = paymentByImp.get(vp.imp_uid);
        const d = p ? differs(vp, p) : null;
        if (d) f.add(`GET /orders/${o.merchant_uid} shows payment ${vp.imp_uid} with ${d}`);
      }
    }
  }
  for (const row of s.paymentRows) {
    const p = paymentByImp.get(row.imp_uid);
    if (!p) {
      f.add(`the record has payment ${row.imp_uid} (${row.status}, ${won(Number(row.amount))}) of order ${row.merchant_uid}, which PortOne never had`);
      continue;
    }
    if (p.merchant_uid !== row.merchant_uid) f.add(`the record files payment ${row.imp_uid} under order ${row.merchant_uid}; PortOne has it for ${p.merchant_uid}`);
    const d = differs(row, p);
    if (d) f.add(`payment ${row.imp_uid} of order ${row.merchant_uid}: the record says ${d}`);
  }
  const counts = [...byStatus].map(([st, n]) => `${n} ${st}`).join(', ') || 'no orders';
  return result(5, f, `${s.orders.length} orders (${counts}) and ${s.paymentRows.length} payment rows agree with PortOne's ledger: paid ⇔ tickets, refunded ⇔ money returned, expired/released ⇔ no money kept`);
}
