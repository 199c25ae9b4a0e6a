/**
 * `@dropgate/invariants`: the invariants of design.md, checked after a drop (or a chaos scenario)
 * across the four places that must agree: the API, Postgres (the record), Redis (the fast copy) and
 * PortOne's ledger (the simulator's). `npm run drop`, `npm run chaos` and the tests run this code.
 *
 * 1. No oversell. 2. Money and tickets match. 3. Every hold ended. 4. Redis and Postgres agree.
 * 5. The record tells the truth (each order's status and payment rows agree with PortOne's ledger).
 */
import { checkAgreement, checkHoldsEnded, checkMoneyAndTickets, checkNoOversell } from './checks.ts';
import { checkRecord } from './record.ts';
import { readState } from './state.ts';
import type { InvariantInputs, InvariantReport } from './types.ts';

export { INVARIANT_NAMES, type InvariantId, type InvariantInputs, type InvariantReport, type InvariantResult } from './types.ts';
export { ORPHAN_SETTLE_MS, onlyOrphansLeft, orphanWork } from './orphans.ts';
export { ledgerOf, moneyKept, type LedgerCancel, type LedgerConfirm, type LedgerPayment, type LedgerWebhook, type PortOneLedger } from './ledger.ts';

/**
 * Checks 1-4 (what `npm run drop` reports) against the current state. Never throws for a violation;
 * only for I/O failures.
 */
export async function checkInvariants(inputs: InvariantInputs): Promise<InvariantReport> {
  const s = await readState(inputs);
  const results = [checkNoOversell(s), checkMoneyAndTickets(s), checkHoldsEnded(s), checkAgreement(s)];
  return { ok: results.every((r) => r.ok), results };
}

/**
 * Checks 1-5: also the record, order by order, against PortOne's ledger (and, with `adminToken`,
 * `GET /orders/:merchant_uid` of every order). For small events: the chaos campaign and tests.
 */
export async function checkAll(inputs: InvariantInputs): Promise<InvariantReport> {
  const s = await readState(inputs, { record: true });
  const results = [checkNoOversell(s), checkMoneyAndTickets(s), checkHoldsEnded(s), checkAgreement(s), checkRecord(s)];
  return { ok: results.every((r) => r.ok), results };
}
