/**
 * BullMQ queues shared by the API (producer) and the workers: names, payloads, deterministic job ids
 * (so duplicates collapse) and default options (attempts, backoff, retention).
 */
import { Queue, type JobsOptions, type ConnectionOptions } from 'bullmq';

/** Hash-tagged so every queue key lands in one Redis Cluster slot, as BullMQ requires. */
export const QUEUE_PREFIX = '{dropgate}';

export const QueueNames = {
  /** persist an approved hold in Postgres */
  holds: 'holds',
  /** act on a payment's outcome (webhook, expiry check, sweep) */
  payments: 'payments',
  /** expire an overdue hold (after asking PortOne); fed by the periodic sweep */
  expiry: 'expiry',
  /** Redis rebuilds (the periodic sweep runs on the workers' timers) */
  maintenance: 'maintenance',
} as const;
export type QueueName = (typeof QueueNames)[keyof typeof QueueNames];

export interface PersistHoldJob {
  eventId: string;
  merchantUid: string;
  impUid: string;
  seq: number;
  /** epoch ms */
  expiresAt: number;
  /** epoch ms the hold was taken */
  heldAt: number;
}

export interface PaymentOutcomeJob {
  eventId: string;
  merchantUid: string;
  impUid: string;
  /** what the notification claimed; a hint only, the worker re-fetches the payment */
  hint: string | null;
  /**
   * webhook: a notification named this payment; reconcile: ask PortOne for the order's payment
   * (after a Redis rebuild, or a webhook naming one payment too many); watch: a late-payment check;
   * verify: a confirm approved this payment on hold `seq`, check it with PortOne at once; ledger:
   * PortOne lists this payment paid and the record does not have it (no webhook told us, or it was lost);
   * refund: a refund decided for this payment and not done: ask PortOne about it again, through its own
   * API, and finish it. Webhook, ledger and refund jobs are settled alike. unchecked: a V1 confirm on the
   * order was refused PAYMENT_UNCHECKED: verify the payments of the order's last hold now (impUid '').
   */
  source: 'webhook' | 'reconcile' | 'watch' | 'verify' | 'ledger' | 'refund' | 'unchecked';
  /**
   * For 'watch': which of the late-payment checks this is (1..5). For 'verify': how many times the
   * relay already asked PortOne before it queued the job (0 or 1).
   */
  check?: number;
  /** For 'verify': the hold the payment was approved on. */
  seq?: number;
  /** epoch ms the notification arrived */
  receivedAt: number;
}

export interface ExpireHoldJob {
  eventId: string;
  merchantUid: string;
  /** The hold's number when it was found overdue; null = whichever hold is live. */
  seq: number | null;
}

export interface MaintenanceJob {
  kind: 'rebuild';
  eventId: string;
  /** rebuild even when the event's state looks whole (after Postgres refused an oversell) */
  force?: boolean;
}

/** BullMQ custom ids must not contain ':'; merchant_uids and imp_uids never do. */
export const jobIds = {
  persistHold: (merchantUid: string, seq: number) => `hold-${merchantUid}-${seq}`,
  /** A webhook's outcome job; `generation` from HoldStore.webhookGeneration (see noteWebhook). */
  paymentOutcome: (merchantUid: string, impUid: string, generation: number) => `pay-${merchantUid}-${impUid}-${generation}`,
  /** A webhook's outcome job once the order has seen too many payments: ask for the order's payment. */
  orderOutcome: (merchantUid: string, generation: number) => `rec-${merchantUid}-w${generation}`,
  verifyPayment: (merchantUid: string, seq: number, impUid: string) => `verify-${merchantUid}-${seq}-${impUid}`,
  expireHold: (merchantUid: string) => `exp-${merchantUid}`,
  /** The look a confirm refused PAYMENT_UNCHECKED asks for (one at a time per order: removed when done). */
  checkUnchecked: (merchantUid: string) => `unchecked-${merchantUid}`,
  rebuild: (eventId: string, epoch: string) => `rebuild-${eventId}-${epoch}`,
  watchPayment: (merchantUid: string, impUid: string, check: number) => `watch-${merchantUid}-${impUid}-${check}`,
  recheckPayment: (merchantUid: string, impUid: string) => `recheck-${merchantUid}-${impUid}`,
  /** A paid payment the ledger sweep found PortOne has and the record does not. */
  ledgerPayment: (merchantUid: string, impUid: string, state?: string) => `ledger-${merchantUid}-${impUid}${state === undefined ? '' : `-${state}`}`,
};

const retention = { removeOnComplete: { age: 3_600, count: 50_000 }, removeOnFail: { age: 7 * 86_400, count: 50_000 } };

/** Default options per queue: explicit attempts and backoff; permanent failures throw UnrecoverableError. */
export const defaultJobOptions: Record<QueueName, JobsOptions> = {
  holds: { attempts: 20, backoff: { type: 'exponential', delay: 200 }, ...retention },
  payments: { attempts: 25, backoff: { type: 'exponential', delay: 500 }, ...retention },
  expiry: { attempts: 25, backoff: { type: 'exponential', delay: 1_000 }, ...retention },
  maintenance: { attempts: 5, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
};

export type Queues = { [K in QueueName]: Queue };

export function createQueues(connection: ConnectionOptions, prefix: string = QUEUE_PREFIX): Queues {
  const make = (name: QueueName) => {
    const queue = new Queue(name, { connection, prefix, defaultJobOptions: defaultJobOptions[name] });
    // A queue reports its connection's errors as 'error' events; with no listener one would end the
    // process. Connection errors are reported through readiness and metrics, and each call that
    // fails rejects on its own.
    queue.on('error', () => undefined);
    return queue;
  };
  return { holds: make('holds'), payments: make('payments'), expiry: make('expiry'), maintenance: make('maintenance') };
}

/** How long closeQueues waits for a queue's start (BullMQ's Redis version check) to finish. */
export const QUEUE_START_WAIT_MS = 1_000;

/**
 * Closes the queues. BullMQ checks the Redis version when a queue is made; closing the queue while
 * that check is still waiting drops the queue's error listeners, and the check failing afterwards
 * (the shared client is disconnected next) became an 'error' nobody listened to: the process died
 * on its way out (seen in `npm start` stopped right after it started). So each queue is closed once
 * its check is done; a queue whose check still waits after QUEUE_START_WAIT_MS (Redis unreachable)
 * is left open, and its check fails into its listener when the client is disconnected.
 */
export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(Object.values(queues).map(async (q) => {
    let timer: NodeJS.Timeout | undefined;
    const started = await Promise.race([
      q.waitUntilReady().then(() => true, () => true),
      new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), QUEUE_START_WAIT_MS); }),
    ]);
    clearTimeout(timer);
    if (started) await q.close();
  }));
}
