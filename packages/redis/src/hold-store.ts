/**
 * The Redis side of dropgate, one handle for the services: an event's inventory, its orders and their
 * holds, changed only through the Lua scripts in `lua/`. The work is split by job (hold-scripts.ts,
 * inventory.ts, event-loading.ts, handoff-stream.ts); this facade gives each caller one object.
 * Every method is one round trip unless it says otherwise.
 */
import type { RedisClient } from './connection.ts';
import { withScripts, type ScriptedRedis } from './scripts.ts';
import { HoldScripts, type HoldStoreOptions } from './hold-scripts.ts';
import { InventoryReader } from './inventory.ts';
import { EventLoader } from './event-loading.ts';
import { HandoffStream } from './handoff-stream.ts';
import { WebhookDeliveries } from './webhook-deliveries.ts';
import { acquireLock, releaseLock } from './locks.ts';
import { eventKeys } from './keys.ts';
import { WaitingRoomStore } from './waiting-room.ts';
import { WaitlistStore } from './waitlist.ts';

export class HoldStore {
  readonly redis: ScriptedRedis;
  readonly scripts: HoldScripts;
  readonly inventory: InventoryReader;
  readonly events: EventLoader;
  readonly handoffs: HandoffStream;
  readonly deliveries: WebhookDeliveries;
  /** The events' waiting rooms (waiting-room.ts). */
  readonly queues: WaitingRoomStore;
  /** The events' waiting lists (waitlist.ts). */
  readonly waitlists: WaitlistStore;

  constructor(redis: RedisClient, opts: HoldStoreOptions = {}) {
    this.redis = withScripts(redis);
    this.scripts = new HoldScripts(this.redis, opts);
    this.inventory = new InventoryReader(this.redis);
    this.events = new EventLoader(this.redis);
    this.handoffs = new HandoffStream(this.redis);
    this.deliveries = new WebhookDeliveries(this.redis);
    this.queues = new WaitingRoomStore(this.redis);
    this.waitlists = new WaitlistStore(this.redis);
  }

  get decisionTtlSeconds(): number { return this.scripts.decisionTtlSeconds; }

  /**
   * Whether the client is connected and ready now. A client that fails fast (the API's) refuses every
   * command at once otherwise, so a caller can tell before it writes anything elsewhere.
   */
  get connected(): boolean { return this.redis.status === 'ready'; }

  // Script calls (hold-scripts.ts)
  placeHold: HoldScripts['placeHold'] = (...args) => this.scripts.placeHold(...args);
  undoHold: HoldScripts['undoHold'] = (...args) => this.scripts.undoHold(...args);
  releaseAttempt: HoldScripts['releaseAttempt'] = (...args) => this.scripts.releaseAttempt(...args);
  webhookGeneration: HoldScripts['webhookGeneration'] = (...args) => this.scripts.webhookGeneration(...args);
  webhookActedOn: HoldScripts['webhookActedOn'] = (...args) => this.scripts.webhookActedOn(...args);
  dropPayment: HoldScripts['dropPayment'] = (...args) => this.scripts.dropPayment(...args);
  markChecked: HoldScripts['markChecked'] = (...args) => this.scripts.markChecked(...args);
  releaseHold: HoldScripts['releaseHold'] = (...args) => this.scripts.releaseHold(...args);
  settlePaid: HoldScripts['settlePaid'] = (...args) => this.scripts.settlePaid(...args);
  voidSale: HoldScripts['voidSale'] = (...args) => this.scripts.voidSale(...args);
  createOrder: HoldScripts['createOrder'] = (...args) => this.scripts.createOrder(...args);
  reserveOrder: HoldScripts['reserveOrder'] = (...args) => this.scripts.reserveOrder(...args);
  claimOrder: HoldScripts['claimOrder'] = (...args) => this.scripts.claimOrder(...args);
  unclaimOrder: HoldScripts['unclaimOrder'] = (...args) => this.scripts.unclaimOrder(...args);
  settleClaim: HoldScripts['settleClaim'] = (...args) => this.scripts.settleClaim(...args);
  markOrphans: HoldScripts['markOrphans'] = (...args) => this.scripts.markOrphans(...args);
  /** ORDERS_PER_BUYER_MAX as this store applies it (0: no limit). */
  get maxOrdersPerBuyer(): number { return this.scripts.maxOrdersPerBuyer; }
  extendReservation: HoldScripts['extendReservation'] = (...args) => this.scripts.extendReservation(...args);

  // Reads (inventory.ts)
  eventState: InventoryReader['eventState'] = (...args) => this.inventory.eventState(...args);
  orderPreflight: InventoryReader['orderPreflight'] = (...args) => this.inventory.orderPreflight(...args);
  ticketsOfBuyer: InventoryReader['ticketsOfBuyer'] = (...args) => this.inventory.ticketsOfBuyer(...args);
  orderPreflightWithCounts: InventoryReader['orderPreflightWithCounts'] = (...args) => this.inventory.orderPreflightWithCounts(...args);
  orderState: InventoryReader['orderState'] = (...args) => this.inventory.orderState(...args);
  availability: InventoryReader['availability'] = (...args) => this.inventory.availability(...args);
  seatPage: InventoryReader['seatPage'] = (...args) => this.inventory.seatPage(...args);
  seatStates: InventoryReader['seatStates'] = (...args) => this.inventory.seatStates(...args);
  overdueHolds: InventoryReader['overdueHolds'] = (...args) => this.inventory.overdueHolds(...args);
  liveHolds: InventoryReader['liveHolds'] = (...args) => this.inventory.liveHolds(...args);
  eventStates: InventoryReader['eventStates'] = (...args) => this.inventory.eventStates(...args);
  inventories: InventoryReader['inventories'] = (...args) => this.inventory.inventories(...args);
  seatOwners: InventoryReader['seatOwners'] = (...args) => this.inventory.seatOwners(...args);
  buyerTickets: InventoryReader['buyerTickets'] = (...args) => this.inventory.buyerTickets(...args);
  orderStatuses: InventoryReader['orderStatuses'] = (...args) => this.inventory.orderStatuses(...args);

  // Loading (event-loading.ts)
  loadEvent: EventLoader['loadEvent'] = (...args) => this.events.loadEvent(...args);
  markLoading: EventLoader['markLoading'] = (...args) => this.events.markLoading(...args);
  deleteEvent: EventLoader['deleteEvent'] = (...args) => this.events.deleteEvent(...args);
  stampState: EventLoader['stampState'] = (...args) => this.events.stampState(...args);
  keyStampState: EventLoader['keyStampState'] = (...args) => this.events.keyStampState(...args);
  stampKey: EventLoader['stampKey'] = (...args) => this.events.stampKey(...args);
  loadMark: EventLoader['loadMark'] = (...args) => this.events.loadMark(...args);
  quiescent: EventLoader['quiescent'] = (...args) => this.events.quiescent(...args);

  /**
   * Takes the event's rebuild lock: whoever writes an event's whole state (its creation, a rebuild)
   * holds it, so two loads from two snapshots never interleave. @returns its token, or null when held.
   */
  lockRebuild(eventId: string, ttlMs: number): Promise<string | null> {
    return acquireLock(this.redis, eventKeys(eventId).rebuildLock, ttlMs);
  }

  unlockRebuild(eventId: string, token: string): Promise<boolean> {
    return releaseLock(this.redis, eventKeys(eventId).rebuildLock, token);
  }

  // Hand-off stream (handoff-stream.ts)
  readHandoffs: HandoffStream['readHandoffs'] = (...args) => this.handoffs.readHandoffs(...args);
  readNewHandoffs: HandoffStream['readNewHandoffs'] = (...args) => this.handoffs.readNewHandoffs(...args);
  reclaimHandoffs: HandoffStream['reclaimHandoffs'] = (...args) => this.handoffs.reclaimHandoffs(...args);
  ackHandoffs: HandoffStream['ackHandoffs'] = (...args) => this.handoffs.ackHandoffs(...args);
  handoffsLeft: HandoffStream['handoffsLeft'] = (...args) => this.handoffs.handoffsLeft(...args);

  /**
   * Takes the order's manual-confirmation lease (one V2 manual confirmation of an order at a time, so
   * a refused attempt never releases a hold a concurrent approved one relies on). @returns its token,
   * or null when another confirmation holds it.
   */
  lockManualConfirm(eventId: string, merchantUid: string, ttlMs: number): Promise<string | null> {
    return acquireLock(this.redis, eventKeys(eventId).manualConfirmLock(merchantUid), ttlMs);
  }

  unlockManualConfirm(eventId: string, merchantUid: string, token: string): Promise<boolean> {
    return releaseLock(this.redis, eventKeys(eventId).manualConfirmLock(merchantUid), token);
  }

  /**
   * Counts one V2 manual confirmation of an order in a fixed window of `windowMs` that starts at the
   * first one. @returns the count in this window (this one included) and the ms until it ends.
   */
  async countManualConfirm(eventId: string, merchantUid: string, windowMs: number): Promise<{ count: number; resetMs: number }> {
    const key = eventKeys(eventId).manualConfirmCount(merchantUid);
    const replies = await this.redis.multi().incr(key).pexpire(key, windowMs, 'NX').pttl(key).exec();
    if (!replies) throw new Error('manual confirmation count: transaction aborted');
    for (const [error] of replies) if (error) throw error;
    const count = Number(replies[0]![1]);
    const ttl = Number(replies[2]![1]);
    return { count, resetMs: ttl > 0 ? ttl : windowMs };
  }

  // V2 webhook deliveries (webhook-deliveries.ts)
  webhookDelivered: WebhookDeliveries['webhookDelivered'] = (...args) => this.deliveries.webhookDelivered(...args);
  rememberWebhookDelivery: WebhookDeliveries['rememberWebhookDelivery'] = (...args) => this.deliveries.rememberWebhookDelivery(...args);
}
