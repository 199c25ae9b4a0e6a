/**
 * The database, as kysely sees it: one interface per table. `Generated<>` marks columns the database
 * fills in; nullable columns are `T | null`.
 */
import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { HoldStatus, OrderCause, OrderStatus, PoolItem, WaitingRoomSettings } from '@dropgate/domain';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
/** bigint columns come back as strings from pg; amounts fit in a JS number, so they are parsed. */
type Amount = ColumnType<number, number, number>;

export interface EventsTable {
  id: string;
  name: string;
  sale_opens_at: Timestamp;
  sale_closes_at: Timestamp | null;
  hold_ttl_seconds: number;
  max_per_buyer: number | null;
  currency: string;
  created_at: CreatedAt;
  /** Where the hold is taken: at the confirm (default) or at order creation (migration 0006). */
  hold_at: ColumnType<'confirm' | 'order', 'confirm' | 'order' | undefined, never>;
  reservation_ttl_seconds: number | null;
  /** The waiting room's settings (WaitingRoomSettings), or null: no waiting room. */
  waiting_room: ColumnType<WaitingRoomSettings | null, string | null | undefined, never>;
  waitlist_offer_ttl_seconds: number | null;
  /** 32 random bytes signing the event's queue and admission tokens (never shown). */
  rush_secret: Buffer | null;
  /** Orders the buyers who joined the queue before the opening (published after it). */
  queue_seed: string | null;
}

export interface PoolsTable {
  event_id: string;
  id: string;
  name: string;
  capacity: number;
  price: Amount;
}

export interface SeatsTable {
  event_id: string;
  id: string;
  section: string;
  row: string;
  number: string;
  price: Amount;
}

export interface OrdersTable {
  merchant_uid: string;
  event_id: string;
  buyer_id: string;
  amount: Amount;
  currency: string;
  status: OrderStatus;
  /** Why the order last changed status (an OrderCause); null while pending. Checked by trigger. */
  status_cause: ColumnType<OrderCause | null, never, OrderCause>;
  status_reason: string | null;
  hold_expires_at: Timestamp | null;
  paid_imp_uid: string | null;
  /** Migration 0003: SHA-256 of the order's bearer token (null for orders made before tokens). Never updated. */
  order_token_hash: ColumnType<Buffer | null, Buffer | undefined, never>;
  /** Migration 0005: the PortOne API the order's payments go through. Never updated. */
  portone_api: ColumnType<'v1' | 'v2', 'v1' | 'v2' | undefined, never>;
  /** Migration 0008: the buyer was verified (a signed buyer token); such orders count per buyer. Never updated. */
  buyer_verified: ColumnType<boolean, boolean | undefined, never>;
  /** Migration 0010: a waiting-list offer dropgate made for the list's buyer; it cannot be extended. Never updated. */
  waitlist_offer: ColumnType<boolean, boolean | undefined, never>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface OrderSeatsTable {
  merchant_uid: string;
  event_id: string;
  seat_id: string;
  price: Amount;
}

export interface OrderItemsTable {
  merchant_uid: string;
  event_id: string;
  pool_id: string;
  quantity: number;
  unit_price: Amount;
}

export interface HoldsTable {
  hold_id: string;
  merchant_uid: string;
  event_id: string;
  imp_uid: string;
  seq: number;
  status: HoldStatus;
  expires_at: Timestamp;
  created_at: CreatedAt;
  ended_at: Timestamp | null;
  end_reason: string | null;
}

export interface PaymentsTable {
  imp_uid: string;
  merchant_uid: string;
  event_id: string;
  amount: Amount;
  cancel_amount: Amount;
  status: string;
  fail_reason: string | null;
  paid_at: Timestamp | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface TicketsTable {
  id: Generated<string>;
  event_id: string;
  merchant_uid: string;
  imp_uid: string;
  seat_id: string | null;
  pool_id: string | null;
  pool_capacity: number | null;
  serial: number | null;
  issued_at: CreatedAt;
}

export interface RefundsTable {
  imp_uid: string;
  merchant_uid: string;
  event_id: string;
  amount: Amount;
  reason: string;
  status: 'requested' | 'done';
  created_at: CreatedAt;
  done_at: Timestamp | null;
}

export interface OrderEventsTable {
  id: Generated<string>;
  merchant_uid: string;
  event_id: string;
  type: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  at: CreatedAt;
}

export interface Database {
  events: EventsTable;
  pools: PoolsTable;
  seats: SeatsTable;
  orders: OrdersTable;
  order_seats: OrderSeatsTable;
  order_items: OrderItemsTable;
  holds: HoldsTable;
  payments: PaymentsTable;
  tickets: TicketsTable;
  refunds: RefundsTable;
  order_events: OrderEventsTable;
  order_transitions: OrderTransitionsTable;
  buyer_order_counts: BuyerOrderCountsTable;
  queue_fronts: QueueFrontsTable;
  waitlist_entries: WaitlistEntriesTable;
}

/** Migration 0012: a waiting-list entry as its buyer joined (its later states are not kept here). */
export interface WaitlistEntriesTable {
  event_id: string;
  buyer_id: string;
  /** The arrival number on the list (bigint: parsed). */
  seq: ColumnType<number, number, never>;
  seats: string[];
  items: ColumnType<PoolItem[], string, never>;
  created_at: CreatedAt;
}

/**
 * Migration 0011: how far an event's waiting room had admitted (the place of the last buyer admitted, as
 * the room orders them) and when, one row each time the worker saw it move, so a room Redis lost knows
 * who was admitted by when.
 */
export interface QueueFrontsTable {
  event_id: string;
  at: ColumnType<Date, Date | string, never>;
  place: number;
}

/** Migration 0009: a verified buyer's orders per event, bounded by constraint (ORDERS_PER_BUYER_MAX). */
export interface BuyerOrderCountsTable {
  event_id: string;
  buyer_id: string;
  orders: number;
  max_orders: number;
}

/** Migration 0002: the allowed (cause, from) -> to changes of an order's status. */
export interface OrderTransitionsTable {
  cause: string;
  from_status: string;
  to_status: string;
}

export type EventRow = Selectable<EventsTable>;
export type PoolRow = Selectable<PoolsTable>;
export type SeatRow = Selectable<SeatsTable>;
export type OrderRow = Selectable<OrdersTable>;
export type HoldRow = Selectable<HoldsTable>;
export type PaymentRow = Selectable<PaymentsTable>;
export type TicketRow = Selectable<TicketsTable>;
export type NewOrder = Insertable<OrdersTable>;
