/**
 * What PortOne saw, as the checks need it. A structural type rather than the simulator's own: this
 * package serves every caller (the drop, the chaos campaign, tests) and depends on no service. The
 * simulator's `Ledger` (and a ledger read from a running simulator's `GET /sim/ledger`) fits it.
 */

/** A payment as `GET /payments/{imp_uid}` shows it (the fields the checks read). */
export interface LedgerPayment {
  imp_uid: string;
  merchant_uid: string;
  amount: number;
  cancel_amount: number;
  /** The payment's currency (a V1 payment's comes from the buyer's browser); absent: not reported. */
  currency?: string;
  /** `ready` | `paid` | `cancelled` | `failed` */
  status: string;
  /** Unix seconds; 0 when the money never moved. */
  paid_at: number;
}

/** A confirm call PortOne made to the merchant. */
export interface LedgerConfirm {
  imp_uid: string;
  merchant_uid: string;
  /** 0 when no answer came in time. */
  http_status: number;
}

/** A webhook delivery attempt (or a lost webhook). */
export interface LedgerWebhook {
  imp_uid: string;
  merchant_uid: string;
  status: string;
}

/** A cancel request: through the REST API (dropgate's refunds) or on PortOne's side (console, PG). */
export interface LedgerCancel {
  imp_uid: string | null;
  merchant_uid: string | null;
  amount: number | null;
  ok: boolean;
  source: 'api' | 'console';
}

/** Everything PortOne did, in the order it happened. */
export interface PortOneLedger {
  payments: readonly LedgerPayment[];
  confirms: readonly LedgerConfirm[];
  webhooks: readonly LedgerWebhook[];
  cancels: readonly LedgerCancel[];
}

/** Ledger entries of one event (their merchant_uid is `<event id>.<token>`); same type as given. */
export function ledgerOf<L extends PortOneLedger>(ledger: L, eventId: string): L {
  const mine = (m: string | null) => m !== null && m.startsWith(`${eventId}.`);
  return {
    ...ledger,
    payments: ledger.payments.filter((p) => mine(p.merchant_uid)),
    confirms: ledger.confirms.filter((c) => mine(c.merchant_uid)),
    webhooks: ledger.webhooks.filter((w) => mine(w.merchant_uid)),
    cancels: ledger.cancels.filter((c) => mine(c.merchant_uid)),
  };
}

/** Money PortOne holds for this payment: paid and nothing of it cancelled. */
export function moneyKept(p: LedgerPayment): boolean {
  return p.paid_at > 0 && p.status === 'paid' && p.cancel_amount === 0;
}

/** Successful cancels per imp_uid, by where they were made. */
export function cancelCounts(ledger: PortOneLedger): { api: Map<string, number>; console: Map<string, number>; consoleAmount: Map<string, number> } {
  const api = new Map<string, number>();
  const atConsole = new Map<string, number>();
  const consoleAmount = new Map<string, number>();
  for (const c of ledger.cancels) {
    if (!c.ok || c.imp_uid === null) continue;
    const m = c.source === 'api' ? api : atConsole;
    m.set(c.imp_uid, (m.get(c.imp_uid) ?? 0) + 1);
    if (c.source === 'console') consoleAmount.set(c.imp_uid, (consoleAmount.get(c.imp_uid) ?? 0) + (c.amount ?? 0));
  }
  return { api, console: atConsole, consoleAmount };
}

/**
 * Whether `p` could pay `order` whole: the order's amount in its currency, and not cancelled in part at
 * PortOne before it paid the order (`consoleAmount`: cancelCounts). Refunding any other payment is that
 * payment's own business: the order stays open for its real one.
 */
export function couldPayOrder(
  p: LedgerPayment, order: { amount: number; currency: string; paid_imp_uid: string | null }, consoleAmount: ReadonlyMap<string, number>,
): boolean {
  if (p.amount !== order.amount || (p.currency !== undefined && p.currency !== order.currency)) return false;
  const atConsole = consoleAmount.get(p.imp_uid) ?? 0;
  return !(atConsole > 0 && atConsole < p.amount) || order.paid_imp_uid === p.imp_uid;
}
