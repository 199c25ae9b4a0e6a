/**
 * One table of what the Lua scripts return, like BullMQ's ErrorCode: a negative code means the same in
 * every script; each script's result table names the codes it can return, and one mapper turns a code
 * into a result (an unknown code is a bug, thrown).
 */
import type { RefusalCode } from '@dropgate/domain';

export const ScriptError = Object.freeze({
  EventNotLoaded: -1,
  OrderNotFound: -2,
  AmountMismatch: -3,
  SaleNotOpen: -4,
  SaleClosed: -5,
  BuyerLimit: -6,
  SoldOut: -7,
  AlreadyPaid: -8,
  NotReady: -9,
  Deadline: -10,
  Superseded: -11,
  NotOverdue: -12,
  TooManyAttempts: -13,
  OrderClosed: -14,
  Unindexed: -15,
  NotExtendable: -16,
  ExtendLimit: -17,
  RateLimited: -18,
  ListFull: -19,
  OrderLimit: -20,
  Withdrawn: -21,
  Unchecked: -22,
  NotWaiting: -23,
} as const);

const E = ScriptError;

/** What placeHold decided. */
export type PlaceResult =
  | { approved: true; kind: 'new' | 'live' | 'renewed' | 'reserved'; expiresAt: number; seq: number; replayed: boolean }
  | { approved: false; code: RefusalCode | 'EVENT_NOT_LOADED'; replayed: boolean };

export const PLACE_CODES: Readonly<Record<number, RefusalCode | 'EVENT_NOT_LOADED'>> = {
  [E.EventNotLoaded]: 'EVENT_NOT_LOADED',
  [E.OrderNotFound]: 'ORDER_NOT_FOUND',
  [E.AmountMismatch]: 'AMOUNT_MISMATCH',
  [E.SaleNotOpen]: 'SALE_NOT_OPEN',
  [E.SaleClosed]: 'SALE_CLOSED',
  [E.BuyerLimit]: 'BUYER_LIMIT',
  [E.SoldOut]: 'SOLD_OUT',
  [E.AlreadyPaid]: 'ALREADY_PAID',
  [E.NotReady]: 'NOT_READY',
  [E.Deadline]: 'DEADLINE',
  [E.TooManyAttempts]: 'TOO_MANY_ATTEMPTS',
  [E.OrderClosed]: 'ORDER_CLOSED',
  [E.Unchecked]: 'PAYMENT_UNCHECKED',
};
export const APPROVED_KINDS = { 1: 'new', 2: 'live', 3: 'renewed', 4: 'reserved' } as const;

export type ReleaseResult = 'released' | 'nothing_held' | 'order_missing' | 'not_ready' | 'superseded' | 'not_overdue';
export const RELEASE_CODES: Readonly<Record<number, ReleaseResult>> = {
  1: 'released', 0: 'nothing_held', [E.OrderNotFound]: 'order_missing', [E.NotReady]: 'not_ready', [E.Superseded]: 'superseded', [E.NotOverdue]: 'not_overdue',
};
export type SettleResult = 'committed' | 'retaken' | 'already_paid' | 'order_missing' | 'sold_out' | 'buyer_limit' | 'not_ready' | 'closed';
export const SETTLE_CODES: Readonly<Record<number, SettleResult>> = {
  1: 'committed', 2: 'retaken', 0: 'already_paid', [E.OrderNotFound]: 'order_missing', [E.SoldOut]: 'sold_out', [E.BuyerLimit]: 'buyer_limit', [E.NotReady]: 'not_ready', [E.OrderClosed]: 'closed',
};
export type VoidResult = 'voided' | 'not_paid' | 'order_missing' | 'not_ready';
export const VOID_CODES: Readonly<Record<number, VoidResult>> = { 1: 'voided', 0: 'not_paid', [E.OrderNotFound]: 'order_missing', [E.NotReady]: 'not_ready' };
/** released: the hold ended; dropped: the payment got off it; reserved: the hold is its buyer's reservation again. */
export type DropPaymentResult = 'released' | 'dropped' | 'reserved' | 'order_missing' | 'not_ready';
export const DROP_CODES: Readonly<Record<number, DropPaymentResult>> = { 1: 'released', 0: 'dropped', 2: 'reserved', [E.OrderNotFound]: 'order_missing', [E.NotReady]: 'not_ready' };
export type CreateOrderResult = 'created' | 'exists' | 'not_ready' | 'withdrawn';
export const CREATE_CODES: Readonly<Record<number, CreateOrderResult>> = { 1: 'created', 0: 'exists', [E.NotReady]: 'not_ready', [E.Withdrawn]: 'withdrawn' };
/** claimOrder: the signed buyer's order counted, or refused before anything is written. */
export type ClaimOrderResult = 'claimed' | 'not_ready' | 'ORDER_LIMIT';
export const CLAIM_CODES: Readonly<Record<number, ClaimOrderResult>> = { 1: 'claimed', [E.NotReady]: 'not_ready', [E.OrderLimit]: 'ORDER_LIMIT' };

export type ReserveResult =
  | { result: 'reserved'; expiresAt: number }
  | { result: 'exists' | 'not_loaded' | 'not_ready' | 'withdrawn' | 'not_waiting' | 'SALE_NOT_OPEN' | 'SALE_CLOSED' | 'BUYER_LIMIT' | 'SOLD_OUT' };
export const RESERVE_CODES: Readonly<Record<number, Exclude<ReserveResult['result'], 'reserved'>>> = {
  0: 'exists', [E.EventNotLoaded]: 'not_loaded', [E.NotReady]: 'not_ready', [E.SaleNotOpen]: 'SALE_NOT_OPEN',
  [E.SaleClosed]: 'SALE_CLOSED', [E.BuyerLimit]: 'BUYER_LIMIT', [E.SoldOut]: 'SOLD_OUT', [E.Withdrawn]: 'withdrawn', [E.NotWaiting]: 'not_waiting',
};
export type ExtendResult =
  | { result: 'extended'; expiresAt: number; extensionsLeft: number }
  | { result: 'order_missing' | 'not_ready' | 'not_extendable' | 'limit' };
export const EXTEND_CODES: Readonly<Record<number, Exclude<ExtendResult['result'], 'extended'>>> = {
  [E.OrderNotFound]: 'order_missing', [E.NotReady]: 'not_ready', [E.NotExtendable]: 'not_extendable', [E.ExtendLimit]: 'limit',
};

/** The result `code` stands for in `table`; a code the table does not know is a bug in the script. */
export function mapCode<T>(table: Readonly<Record<number, T>>, code: unknown, script: string): T {
  const mapped = table[Number(code)];
  if (mapped === undefined) throw new Error(`${script} returned unknown code ${String(code)}`);
  return mapped;
}
