/**
 * The hand-off stream: placeHold appends one entry per approved payment to the event's stream, in the
 * same script that takes the hold; the workers' relay reads it through a consumer group.
 */
import type { ScriptedRedis } from './scripts.ts';
import { isCluster } from './connection.ts';
import { eventKeys } from './keys.ts';

type StreamEntries = [string, string[]][];

const GROUP = 'relay';
const isNoGroup = (error: unknown) => String((error as Error).message).includes('NOGROUP');

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
    const mine = await this.reclaimHandoffs(eventId, consumer, count, reclaimIdleMs);
    if (mine.length > 0) return mine;
    return (await this.readNewHandoffs([eventId], consumer, count)).get(eventId) ?? [];
  }

  /**
   * Entries of an event's stream another consumer read but left unacknowledged for `idleMs` (a worker
   * that died between reading and queueing), now this consumer's: up to `count`.
   */
  async reclaimHandoffs(eventId: string, consumer: string, count: number, idleMs: number): Promise<Handoff[]> {
    const key = eventKeys(eventId).handoff;
    try {
      const claimed = (await this.redis.xautoclaim(key, GROUP, consumer, idleMs, '0-0', 'COUNT', count)) as [string, StreamEntries];
      return parseEntries(eventId, claimed[1]);
    } catch (error) {
      if (!isNoGroup(error)) throw error;
      await this.createGroups([eventId]);
      return [];
    }
  }

  /**
   * New entries of many events' streams, up to `count` per event, for consumer `consumer`: events
   * with none are left out. On one Redis a single XREADGROUP reads every stream, however many events
   * are active; on a cluster each event's stream lives in its own slot, so one XREADGROUP per event,
   * sent together. Streams without the group get it (and the stream) first.
   *
   * A read that fails on a cluster (its shard failing over) is passed to `onError` when given, and the
   * other events' entries are still returned: read means delivered to this consumer, and entries
   * dropped here would wait JOB_LOCK_MS to be reclaimed. Without `onError` the first failure throws,
   * after every read has finished.
   */
  async readNewHandoffs(
    eventIds: readonly string[], consumer: string, count: number, onError?: (eventId: string, error: unknown) => void,
  ): Promise<Map<string, Handoff[]>> {
    const out = new Map<string, Handoff[]>();
    if (eventIds.length === 0) return out;
    const read = async (ids: readonly string[]) => {
      const keys = ids.map((id) => eventKeys(id).handoff);
      const streams = (await this.redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', count, 'STREAMS', ...keys, ...keys.map(() => '>'))) as [string, StreamEntries][] | null;
      for (const [key, entries] of streams ?? []) {
        const eventId = ids[keys.indexOf(key)]!;
        const handoffs = parseEntries(eventId, entries);
        if (handoffs.length > 0) out.set(eventId, handoffs);
      }
    };
    const readCreatingGroups = async (ids: readonly string[]) => {
      try {
        await read(ids);
      } catch (error) {
        if (!isNoGroup(error)) throw error;
        await this.createGroups(ids);
        await read(ids);
      }
    };
    if (!isCluster(this.redis)) {
      await readCreatingGroups(eventIds);
      return out;
    }
    const results = await Promise.allSettled(eventIds.map((id) => readCreatingGroups([id])));
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        if (!onError) throw r.reason;
        onError(eventIds[i]!, r.reason);
      }
    });
    return out;
  }

  /** Creates the relay group (and the stream) of each event that has none. */
  private async createGroups(eventIds: readonly string[]): Promise<void> {
    await Promise.all(eventIds.map((id) => this.redis.xgroup('CREATE', eventKeys(id).handoff, GROUP, '0', 'MKSTREAM').catch((e: Error) => {
      if (!e.message.includes('BUSYGROUP')) throw e;
    })));
  }

  /**
   * Hand-offs of an event not yet handled (read or not): an entry is deleted once the relay is done
   * with it, so 0 means every hold handed off so far is recorded (or queued as a job).
   */
  async handoffsLeft(eventId: string): Promise<number> {
    return this.redis.xlen(eventKeys(eventId).handoff);
  }

  /** Acknowledges and deletes hand-offs once their jobs are queued. */
  async ackHandoffs(eventId: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const key = eventKeys(eventId).handoff;
    await this.redis.multi().xack(key, GROUP, ...ids).xdel(key, ...ids).exec();
  }
}

/** Stream entries as hand-offs (an entry deleted meanwhile comes back without fields: skipped). */
function parseEntries(eventId: string, entries: StreamEntries | null | undefined): Handoff[] {
  return (entries ?? []).filter(([, f]) => Array.isArray(f) && f.length > 0).map(([id, f]) => {
    const m: Record<string, string> = {};
    for (let i = 0; i < f.length; i += 2) m[f[i]!] = f[i + 1]!;
    return { id, eventId, merchantUid: m.uid!, impUid: m.imp!, seq: Number(m.seq), expiresAt: Number(m.exp), heldAt: Number(m.at), ride: m.ride === '1' };
  });
}
