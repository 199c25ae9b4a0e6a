/**
 * The hand-off stream: placeHold appends one entry per approved payment to the event's stream, in the
 * same script that takes the hold; the workers' relay reads it through a consumer group.
 */
import type { ScriptedRedis } from './scripts.ts';
import { eventKeys } from './keys.ts';

/** A new hold, as placeHold handed it to the workers. */
export interface Handoff {
  /** stream entry id */
  id: string;
  eventId: string;
  merchantUid: string;
  impUid: string;
  seq: number;
  expiresAt: number;
  heldAt: number;
  /** true: a payment approved on a hold that already existed (only its verification is new). */
  ride: boolean;
}

export class HandoffStream {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  /**
   * Reads up to `count` hold hand-offs of an event for consumer `consumer` of group `relay`: entries
   * another consumer left unacknowledged for `reclaimIdleMs` first, then new ones. Creates the group
   * (and the stream) when missing, e.g. after Redis lost its data.
   */
  async readHandoffs(eventId: string, consumer: string, count: number, reclaimIdleMs: number): Promise<Handoff[]> {
    const key = eventKeys(eventId).handoff;
    const parse = (entries: [string, string[]][] | null | undefined): Handoff[] =>
      (entries ?? []).filter(([, f]) => Array.isArray(f) && f.length > 0).map(([id, f]) => {
        const m: Record<string, string> = {};
        for (let i = 0; i < f.length; i += 2) m[f[i]!] = f[i + 1]!;
        return { id, eventId, merchantUid: m.uid!, impUid: m.imp!, seq: Number(m.seq), expiresAt: Number(m.exp), heldAt: Number(m.at), ride: m.ride === '1' };
      });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const claimed = (await this.redis.xautoclaim(key, 'relay', consumer, reclaimIdleMs, '0-0', 'COUNT', count)) as [string, [string, string[]][]];
        const mine = parse(claimed[1]);
        if (mine.length > 0) return mine;
        const fresh = (await this.redis.xreadgroup('GROUP', 'relay', consumer, 'COUNT', count, 'STREAMS', key, '>')) as [string, [string, string[]][]][] | null;
        return parse(fresh?.[0]?.[1]);
      } catch (error) {
        if (!String((error as Error).message).includes('NOGROUP')) throw error;
        await this.redis.xgroup('CREATE', key, 'relay', '0', 'MKSTREAM').catch((e: Error) => {
          if (!e.message.includes('BUSYGROUP')) throw e;
        });
      }
    }
    return [];
  }

  /** Acknowledges and deletes hand-offs once their jobs are queued. */
  async ackHandoffs(eventId: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const key = eventKeys(eventId).handoff;
    await this.redis.multi().xack(key, 'relay', ...ids).xdel(key, ...ids).exec();
  }
}
