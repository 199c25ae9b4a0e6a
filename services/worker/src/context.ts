/** What every processor gets. */
import type { RedisClient } from '@dropgate/redis';
import type { Logger } from 'pino';
import type { Config } from '@dropgate/config';
import type { Db } from '@dropgate/db';
import type { HoldStore } from '@dropgate/redis';
import type { QueueName, Queues } from '@dropgate/jobs';
import type { PaymentGateway } from '@dropgate/portone';
import type { WorkerMetrics } from '@dropgate/telemetry';
import type { Clock } from '@dropgate/domain';

export interface WorkerContext {
  config: Config;
  db: Db;
  redis: RedisClient;
  store: HoldStore;
  queues: Queues;
  /** PortOne V1 and V2, routed by payment key (see PaymentGateway). */
  portone: PaymentGateway;
  metrics: WorkerMetrics;
  log: Logger;
  /** The time holds are found overdue and expired at (the system clock, or a test's). */
  clock: Clock;
}

/** A failure worth retrying (the dependency may come back). BullMQ retries it with backoff. */
export class TransientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransientError';
  }
}

/**
 * The event's state is not in Redis (lost, being rebuilt, or archived after its season): transient,
 * and the worker asks for the event to be loaded again (a rebuild job), so a job for an archived event
 * loads it on demand instead of retrying into the void.
 */
export class EventNotLoadedError extends TransientError {
  constructor(message = 'event not loaded in Redis') {
    super(message);
    this.name = 'EventNotLoadedError';
  }
}

/**
 * Runs one job's work under its queue's duration and failure metrics: a BullMQ job, or a hold the
 * hand-off relay records itself (the `holds` job's work, done without the job).
 */
export async function measuredJob<T>(metrics: WorkerMetrics, queue: QueueName, work: () => Promise<T>): Promise<T> {
  const end = metrics.jobDuration.startTimer({ queue });
  try {
    const out = await work();
    end({ result: 'completed' });
    return out;
  } catch (error) {
    end({ result: 'failed' });
    metrics.jobFailures.inc({ queue });
    throw error;
  }
}
