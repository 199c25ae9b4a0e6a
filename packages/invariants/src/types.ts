/** The shapes every check shares: inputs, results, and how violations are collected. */
import type { RedisClient } from '@dropgate/redis';
import type { Db } from '@dropgate/db';
import type { PortOneLedger } from './ledger.ts';

export interface InvariantInputs<L extends PortOneLedger = PortOneLedger> {
  eventId: string;
  db: Db;
  redis: RedisClient;
  apiUrl: string;
  /** PortOne's ledger (the simulator's); entries of other events are ignored. */
  ledger: L;
  /**
   * The admin token: lets the record check read each order through `GET /orders/:merchant_uid` as
   * buyers and operators see it. Without it only Postgres is read.
   */
  adminToken?: string;
}

export type InvariantId = 1 | 2 | 3 | 4 | 5;

export interface InvariantResult {
  id: InvariantId;
  name: string;
  ok: boolean;
  /** What was checked, with the numbers. */
  summary: string;
  /** The first violations found (at most {@link MAX_LISTED}). */
  violations: string[];
  violationCount: number;
}

export interface InvariantReport {
  ok: boolean;
  results: InvariantResult[];
}

export const INVARIANT_NAMES: Readonly<Record<InvariantId, string>> = {
  1: 'no oversell',
  2: 'money and tickets match',
  3: 'every hold ended',
  4: 'Redis and Postgres agree',
  5: 'the record tells the truth',
};

export const MAX_LISTED = 25;

/** Violations found by one check: all counted, the first {@link MAX_LISTED} kept. */
export class Findings {
  readonly list: string[] = [];
  count = 0;
  add(message: string): void {
    this.count++;
    if (this.list.length < MAX_LISTED) this.list.push(message);
  }
}

export function result(id: InvariantId, f: Findings, summary: string): InvariantResult {
  return { id, name: INVARIANT_NAMES[id], ok: f.count === 0, summary, violations: f.list, violationCount: f.count };
}
