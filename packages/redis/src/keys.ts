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
  /** hash: buyer id -> orders the buyer made for the event (ORDERS_PER_BUYER_MAX; rebuilt from the record) */
  buyerOrders: string;
  /** hash: merchant_uid -> "<buyer>|<ms>": counted orders on their way to the record (claimOrder) */
  buyerClaims: string;
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
  /**
   * Waiting room (issue 11). hash: seq (arrivals after the opening), last (ms of the last admission
   * step), credit (admissions earned, not yet given), rate (current pace, per s), admitted (total),
   * ordered (admitted buyers who ordered), lat (confirm latency, ms, for the dynamic pace), radj (ms of
   * the last pace change), ordered_at_adj and admitted_at_adj (counters at that change).
   */
  queue: string;
  /** zset: waiting buyer id -> place (pre-opening joiners in [0,1) by their seeded hash, later ones 2+) */
  queueWaiting: string;
  /** zset: admitted buyer id -> admission expiry (ms), while the buyer has not ordered */
  queueActive: string;
  /** hash: admitted buyer id -> admission expiry (ms), every buyer ever admitted */
  queueAdmitted: string;
  /** hash: buyer id -> ms of the buyer's last poll (rate limit) */
  queuePolls: string;
  /** zset: how far the room had admitted (place) by when (member: epoch ms), as recorded; put back by a rebuild */
  queueFronts: string;
  /** Waiting list (issue 11). zset: waiting buyer id -> arrival number (first come, first served) */
  waitlist: string;
  /**
   * hash: buyer id -> JSON entry {s: seats, i: items, st: waiting|offered|expired|sold_out, m: merchant_uid,
   * t: order token}; `#seq`: arrivals (every entry ever kept); `#cur`: where the next advance step's look
   * along the line resumes (scanWaitlist)
   */
  waitlistEntries: string;
  /** zset: buyer id with an open offer -> the offer's reservation expiry (ms) */
  waitlistOffers: string;
  /** lock key: one process at a time makes offers */
  waitlistLock: string;
  /** lock key for rebuilds */
  rebuildLock: string;
  /** lock key serializing the settlement of one order's outcomes */
  settleLock(merchantUid: string): string;
  /** lock key: one V2 manual confirmation of an order at a time */
  manualConfirmLock(merchantUid: string): string;
  /** string: V2 manual confirmations of an order in the current window (expires with it) */
  manualConfirmCount(merchantUid: string): string;
}

export function eventKeys(eventId: string): EventKeys {
  const tag = `{ev:${eventId}}`;
  return {
    meta: `${tag}:meta`,
    seats: `${tag}:seat`,
    seatIndex: (status) => `${tag}:seat:${status}`,
    counts: `${tag}:cnt`,
    buyers: `${tag}:buyer`,
    buyerOrders: `${tag}:border`,
    buyerClaims: `${tag}:bclaim`,
    holds: `${tag}:holds`,
    handoff: `${tag}:handoff`,
    order: (merchantUid) => orderKey(eventId, merchantUid),
    answers: (merchantUid) => `${tag}:o:${merchantUid}:d`,
    webhooks: (merchantUid) => `${tag}:o:${merchantUid}:w`,
    webhookDelivery: (webhookId) => `${tag}:wd:${webhookId}`,
    queue: `${tag}:q`,
    queueWaiting: `${tag}:q:wait`,
    queueActive: `${tag}:q:act`,
    queueAdmitted: `${tag}:q:adm`,
    queuePolls: `${tag}:q:poll`,
    queueFronts: `${tag}:q:front`,
    waitlist: `${tag}:wl`,
    waitlistEntries: `${tag}:wl:e`,
    waitlistOffers: `${tag}:wl:off`,
    waitlistLock: `${tag}:wl:lock`,
    rebuildLock: `${tag}:rebuild-lock`,
    settleLock: (merchantUid) => `${tag}:o:${merchantUid}:settle-lock`,
    manualConfirmLock: (merchantUid) => `${tag}:o:${merchantUid}:manual-lock`,
    manualConfirmCount: (merchantUid) => `${tag}:o:${merchantUid}:manual-count`,
  };
}

/** The order's hash key alone (eventKeys(eventId).order(merchantUid) without the rest): the confirm's one key. */
export function orderKey(eventId: string, merchantUid: string): string {
  return `{ev:${eventId}}:o:${merchantUid}`;
}

/** Every key pattern of an event, for SCAN-based cleanup. */
export function eventKeyPattern(eventId: string): string {
  return `{ev:${eventId}}:*`;
}
