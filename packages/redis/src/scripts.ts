/**
 * Loads the Lua scripts in `lua/` (`<name>-<numKeys>.lua`, e.g. `reserveOrder-10.lua`; Redis knows a script
 * by the SHA-1 of its text, so two versions of one never mix), inlines `--- @include "x"` pieces, and
 * registers them on an ioredis client with `defineCommand`, which runs them by EVALSHA (falling back
 * to EVAL once if the server has not seen them, e.g. after a restart).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from './connection.ts';

const LUA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'lua');

export interface ScriptSource {
  name: string;
  numberOfKeys: number;
  lua: string;
}

function inline(source: string, seen: Set<string>): string {
  return source.replace(/^--- @include "([^"]+)"\s*$/gm, (_all, include: string) => {
    if (seen.has(include)) return '';
    seen.add(include);
    return inline(readFileSync(join(LUA_DIR, `${include}.lua`), 'utf8'), seen);
  });
}

/** Every script, read once per process. */
export const SCRIPTS: readonly ScriptSource[] = readdirSync(LUA_DIR)
  .filter((f) => f.endsWith('.lua'))
  .map((file) => {
    const match = /^([A-Za-z]+)-(\d+)\.lua$/.exec(file);
    if (!match) throw new Error(`Lua script file ${file} is not named <name>-<numKeys>.lua`);
    return { name: match[1]!, numberOfKeys: Number(match[2]), lua: inline(readFileSync(join(LUA_DIR, file), 'utf8'), new Set()) };
  });

export type ScriptName = 'placeHold' | 'reserveOrder' | 'extendReservation' | 'joinQueue' | 'pollQueue' | 'useAdmission' | 'joinWaitlist' | 'scanWaitlist' | 'dropWaitlist' | 'undoHold' | 'releaseAttempt' | 'releaseHold' | 'settlePaid' | 'voidSale' | 'createOrder' | 'dropPayment' | 'noteWebhook' | 'seatPage' | 'releaseLock' | 'extendLock' | 'finishLoad' | 'checkStamp' | 'claimOrder' | 'unclaimOrder' | 'withdrawOrphans';

/** A Redis client (single or cluster) with our scripts as commands. */
export type ScriptedRedis = RedisClient & {
  [K in ScriptName]: (...args: (string | number)[]) => Promise<unknown>;
};

const registered = new WeakSet<RedisClient>();

/** Registers every script on `redis` (once per client). */
export function withScripts(redis: RedisClient): ScriptedRedis {
  if (!registered.has(redis)) {
    for (const s of SCRIPTS) redis.defineCommand(s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
    registered.add(redis);
  }
  return redis as ScriptedRedis;
}
