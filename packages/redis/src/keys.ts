/**
 * Redis key layout. Every key of an event shares the hash tag `{ev:<eventId>}`, so each script touches
 * one slot and runs unchanged on Redis Cluster.
 */
export interface EventKeys {
  /** hash: state ('ready' | 'loading'), opens, closes, ttl (ms), max, epoch, seat_index ('1': seat indexes whole) */
  meta: string;
  /** hash: seat id -> '' free | 'h:<uid>' held | 's:<uid>' sold */
  seats: string;
  /**
   * zset (every score 0, so ordered by seat id): the seats in one status, for paging by status with
   * ZRANGEBYLEX. `<seats>:available|held|sold`: scripts derive the name from the seats key (moveLines).
   */
  seatIndex(status: 'available' | 'held' | 'sold'): string;
  /** hash: seats_total, seats_held, seats_sold, p:<pool>:cap|held|sold */
  counts: string;
  /** hash: buyer id -> tickets held or bought */
  buyers: string;
  /** zset: merchant_uid scored by hold expiry (ms) */
  holds: string;
  /** stream: one entry per new hold (uid, imp, seq, exp, at), read by the workers' relay */
  handoff: string;
  order(merchantUid: string): string;
  /** hash: imp_uid -> the confirm answer given to it for this order (bounded per order; see placeHold) */
  answers(merchantUid: string): string;
  /** hash: imp_uid (or '*') -> generation of its webhook outcome job (see noteWebhook) */
  webhooks(merchantUid: string): string;
  /** string with a TTL: a signed V2 webhook (by its `webhook-id`) already queued (see WebhookDeliveries) */
  webhookDelivery(webhookId: string): string;
  /** lock key for rebuilds */
  rebuildLock: string;
  /** lock key serializing the settlement of one order's outcomes */
  settleLock(merchantUid: string): string;
  /** lock key: one V2 manual confirmation of an order at a time */
  manualConfirmLock(merchantUid: string): string;
}

export function eventKeys(eventId: string): EventKeys {
  const tag = `{ev:${eventId}}`;
  return {
    meta: `${tag}:meta`,
    seats: `${tag}:seat`,
    seatIndex: (status) => `${tag}:seat:${status}`,
    counts: `${tag}:cnt`,
    buyers: `${tag}:buyer`,
    holds: `${tag}:holds`,
    handoff: `${tag}:handoff`,
    order: (merchantUid) => `${tag}:o:${merchantUid}`,
    answers: (merchantUid) => `${tag}:o:${merchantUid}:d`,
    webhooks: (merchantUid) => `${tag}:o:${merchantUid}:w`,
    webhookDelivery: (webhookId) => `${tag}:wd:${webhookId}`,
    rebuildLock: `${tag}:rebuild-lock`,
    settleLock: (merchantUid) => `${tag}:o:${merchantUid}:settle-lock`,
    manualConfirmLock: (merchantUid) => `${tag}:o:${merchantUid}:manual-lock`,
  };
}

/** Every key pattern of an event, for SCAN-based cleanup. */
export function eventKeyPattern(eventId: string): string {
  return `{ev:${eventId}}:*`;
}
