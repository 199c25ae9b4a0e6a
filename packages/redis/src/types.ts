/** Shapes the Redis layer reads and writes. */
import type { OrderStatus, PoolItem } from '@dropgate/domain';

export type { EventSnapshot, SnapshotOrder } from '@dropgate/domain';

export interface InventoryCounts {
  capacity: number;
  available: number;
  held: number;
  sold: number;
}
export interface Availability {
  seats: InventoryCounts;
  pools: (InventoryCounts & { id: string })[];
}
export type SeatState = 'available' | 'held' | 'sold';

export interface NewRedisOrder {
  merchantUid: string;
  amount: number;
  buyerId: string;
  seats: readonly string[];
  items: readonly PoolItem[];
  tickets: number;
  /** The PortOne API the order's payments go through (absent: v1); a V2 order takes no V1 confirm. */
  api?: 'v1' | 'v2';
}

export interface OrderState {
  status: OrderStatus;
  seq: number;
  expiresAt: number | null;
  impUid: string | null;
  /** Every imp_uid approved on the live hold (the taker first). */
  impUids: string[];
}

/** An order's seats and pool items as the order hash stores them: "pool,qty,pool,qty,...". */
export function itemsCsv(items: readonly PoolItem[]): string {
  return items.map((i) => `${i.pool},${i.quantity}`).join(',');
}
