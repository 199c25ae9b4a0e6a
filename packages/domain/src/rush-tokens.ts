/**
 * The waiting room's tokens, signed with the event's `rush_secret` (32 random bytes made at the
 * event's creation and kept in Postgres, so every API process signs and checks with the same key, and
 * a Redis restart invalidates nothing). HMAC-SHA256 with a different label per kind, so one kind
 * can never pass for another; compared in constant time.
 *
 * - queue token `q2~<buyer>~<place>~<mac, 120 bits>`: the buyer's handle on their place, in a URL path
 *   (at most 99 characters, under the router's 100 per parameter). `<place>` is where the buyer stands:
 *   `s` for a buyer who joined before the opening (placed by the seeded shuffle, which anyone can
 *   recompute), or the arrival in base 36 (see joinQueue). It lets a poll put the buyer back in their
 *   place when Redis has lost the room (a restart without persistence, a failover to a replica that had
 *   not seen the join). Deterministic (the same buyer joining again gets the same token) and unguessable
 *   without the secret.
 * - queue token `q1~<buyer>~<mac, 128 bits>`: a handle without a place (a buyer admitted already when
 *   they joined, and tokens handed out before places were carried).
 * - admission token `a1~<buyer>~<expiry ms>~<mac>`: lets one buyer order on one event until it expires.
 * Buyer ids cannot contain `~` (RESOURCE_ID_PATTERN), so the parts split unambiguously.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RESOURCE_ID_PATTERN } from './ids.ts';

function mac(secret: Buffer, label: string, ...parts: string[]): string {
  const h = createHmac('sha256', secret).update(label);
  for (const p of parts) h.update('\u0000').update(p);
  return h.digest('base64url');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const BUYER = new RegExp(RESOURCE_ID_PATTERN);
const queueMac = (secret: Buffer, eventId: string, buyerId: string) => mac(secret, 'queue', eventId, buyerId).slice(0, 22);

export function queueToken(secret: Buffer, eventId: string, buyerId: string): string {
  return `q1~${buyerId}~${queueMac(secret, eventId, buyerId)}`;
}

/** The buyer a queue token stands for, or null when it is not one this event signed. */
export function queueTokenBuyer(secret: Buffer, eventId: string, token: string): string | null {
  const [v, buyer, sig, ...rest] = token.split('~');
  if (v !== 'q1' || buyer === undefined || sig === undefined || rest.length > 0 || !BUYER.test(buyer)) return null;
  if (!same(sig, queueMac(secret, eventId, buyer))) return null;
  return buyer;
}

/** Where a queue token says its buyer stands: `s` (the seeded shuffle) or an arrival in base 36. */
const PLACE = /^(s|[0-9a-z]{1,11})$/;
const placeMac = (secret: Buffer, eventId: string, buyerId: string, place: string) => mac(secret, 'place', eventId, buyerId, place).slice(0, 20);

/** A queue token that carries the buyer's place (`s`, or an arrival in base 36). */
export function placeToken(secret: Buffer, eventId: string, buyerId: string, place: string): string {
  if (!PLACE.test(place)) throw new Error(`not a queue place: ${place}`);
  return `q2~${buyerId}~${place}~${placeMac(secret, eventId, buyerId, place)}`;
}

/**
 * The buyer a queue token (either kind) stands for and the place it carries (null for a `q1` token), or
 * null when it is not one this event signed.
 */
export function queueTokenPlace(secret: Buffer, eventId: string, token: string): { buyer: string; place: string | null } | null {
  if (token.startsWith('q1~')) {
    const buyer = queueTokenBuyer(secret, eventId, token);
    return buyer === null ? null : { buyer, place: null };
  }
  const [v, buyer, place, sig, ...rest] = token.split('~');
  if (v !== 'q2' || buyer === undefined || place === undefined || sig === undefined || rest.length > 0) return null;
  if (!BUYER.test(buyer) || !PLACE.test(place) || !same(sig, placeMac(secret, eventId, buyer, place))) return null;
  return { buyer, place };
}

export function admissionToken(secret: Buffer, eventId: string, buyerId: string, expiresAt: number): string {
  return `a1~${buyerId}~${expiresAt}~${mac(secret, 'admission', eventId, buyerId, String(expiresAt))}`;
}

/** Why an admission token does not let `buyerId` order on this event now, or null when it does. */
export function admissionProblem(secret: Buffer, eventId: string, buyerId: string, token: string, nowMs: number): string | null {
  const [v, buyer, exp, sig, ...rest] = token.split('~');
  if (v !== 'a1' || buyer === undefined || exp === undefined || sig === undefined || rest.length > 0 || !/^\d{1,15}$/.test(exp)) {
    return 'not an admission token';
  }
  if (!BUYER.test(buyer) || !same(sig, mac(secret, 'admission', eventId, buyer, exp))) return 'not an admission token of this event';
  if (buyer !== buyerId) return 'the admission token is another buyer\'s';
  if (Number(exp) <= nowMs) return 'the admission expired: join the queue again';
  return null;
}

/**
 * The order token of a waiting-list offer (an order dropgate makes for the list's buyer): derived from
 * the event's secret and the order's merchant_uid instead of drawn at random, so a waiting list Redis
 * lost can show the buyer their offer's token again (only its SHA-256 is stored, as for every order).
 * As long and as unguessable as a random order token (256 bits, base64url).
 */
export function offerOrderToken(secret: Buffer, eventId: string, merchantUid: string): string {
  return mac(secret, 'offer-order', eventId, merchantUid);
}
