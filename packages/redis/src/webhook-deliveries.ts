/**
 * Signed V2 webhooks already acted on, by their `webhook-id`, so PortOne's retries of a delivery we
 * queued (and duplicates it sends after a 200) are answered at once. Only PortOne can mint a signed
 * id, and each is kept for a bounded time (longer than PortOne's retry schedule, 0+1+4+16+64+256
 * minutes), under its order's event so the event's cleanup removes them too.
 */
import type { ScriptedRedis } from './scripts.ts';
import { eventKeys } from './keys.ts';

export class WebhookDeliveries {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  /** Whether delivery `webhookId` of an order of `eventId` was already acted on. */
  async webhookDelivered(eventId: string, webhookId: string): Promise<boolean> {
    return (await this.redis.exists(eventKeys(eventId).webhookDelivery(webhookId))) === 1;
  }

  /** Remembers delivery `webhookId` as acted on for `ttlSeconds`. */
  async rememberWebhookDelivery(eventId: string, webhookId: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(eventKeys(eventId).webhookDelivery(webhookId), '1', 'EX', ttlSeconds);
  }
}
