/** What the API is built from (see server.ts): each route plugin receives it. */
import type { RedisClient } from '@dropgate/redis';
import type { Config } from '@dropgate/config';
import type { Db } from '@dropgate/db';
import type { Clock } from '@dropgate/domain';
import type { HoldStore } from '@dropgate/redis';
import type { Queues } from '@dropgate/jobs';
import type { PortOneV2Client } from '@dropgate/portone';
import type { ApiMetrics, Registry } from '@dropgate/telemetry';
import type { EventCatalog } from './lib/catalog.ts';

export interface AppDeps {
  config: Config;
  db: Db;
  /** Fail-fast client (no offline queue) used for every request-path command. */
  redis: RedisClient;
  store: HoldStore;
  queues: Queues;
  catalog: EventCatalog;
  registry: Registry;
  metrics: ApiMetrics;
  /** The time decisions are taken at (the system clock, or a test's). */
  clock: Clock;
  /** PortOne V2 REST (manual confirmation, pre-registration); null when PORTONE_V2_API_SECRET is unset. */
  portoneV2: PortOneV2Client | null;
}
