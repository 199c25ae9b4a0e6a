/** Every migration, by sortable name. Migrations are frozen once released: add a new one instead. */
import type { Migration } from 'kysely/migration';
import * as initial from './0001_initial.ts';
import * as orderStateMachine from './0002_order_state_machine.ts';
import * as orderToken from './0003_order_token.ts';
import * as holdReconciled from './0004_hold_reconciled.ts';
import * as portoneApi from './0005_portone_api.ts';
import * as fairRush from './0006_fair_rush.ts';
import * as liveHoldsByOrder from './0007_live_holds_by_order.ts';
import * as buyerVerified from './0008_buyer_verified.ts';
import * as buyerOrderCounts from './0009_buyer_order_counts.ts';
import * as waitlistOffer from './0010_waitlist_offer.ts';
import * as queueFronts from './0011_queue_fronts.ts';
import * as waitlistEntries from './0012_waitlist_entries.ts';
import * as refundBuyerLimit from './0013_refund_buyer_limit.ts';

export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_order_state_machine': orderStateMachine,
  '0003_order_token': orderToken,
  '0004_hold_reconciled': holdReconciled,
  '0005_portone_api': portoneApi,
  '0006_fair_rush': fairRush,
  '0007_live_holds_by_order': liveHoldsByOrder,
  '0008_buyer_verified': buyerVerified,
  '0009_buyer_order_counts': buyerOrderCounts,
  '0010_waitlist_offer': waitlistOffer,
  '0011_queue_fronts': queueFronts,
  '0012_waitlist_entries': waitlistEntries,
  '0013_refund_buyer_limit': refundBuyerLimit,
};
