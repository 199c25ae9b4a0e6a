/**
 * Identifiers. An event id is short and URL-safe; a `merchant_uid` carries its event id so the confirm
 * path routes to the event's Redis keys without a lookup: `<event_id>.<11 random base62 chars>`.
 * PortOne V1 accepts merchant_uids of up to 40 characters, so event ids are at most 28.
 */
import { randomInt } from 'node:crypto';

export const EVENT_ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,27}$';
export const RESOURCE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$';
export const MERCHANT_UID_PATTERN = '^[a-z0-9][a-z0-9-]{0,27}\\.[0-9A-Za-z]{11}$';

const eventIdRe = new RegExp(EVENT_ID_PATTERN);
const merchantUidRe = new RegExp(MERCHANT_UID_PATTERN);
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function isEventId(value: string): boolean {
  return eventIdRe.test(value);
}

/** A new merchant_uid for an order of `eventId` (≈65 bits of randomness). */
export function newMerchantUid(eventId: string): string {
  let token = '';
  for (let i = 0; i < 11; i++) token += ALPHABET[randomInt(62)];
  return `${eventId}.${token}`;
}

/** The event id a merchant_uid belongs to, or null when it is not one of ours. */
export function eventIdOf(merchantUid: string): string | null {
  if (!merchantUidRe.test(merchantUid)) return null;
  return merchantUid.slice(0, merchantUid.lastIndexOf('.'));
}
