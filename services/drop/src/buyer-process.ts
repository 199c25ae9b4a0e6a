/**
 * A child process running one share of a drop's buyers (`--buyer-processes`), forked by
 * buyer-processes.ts. It receives a {@link BuyerShareStart} over IPC, runs `runBuyers` on its share,
 * streams the payment windows it sees (for the live progress) and finally sends its whole log.
 */
import { emptyBuyerLog, runBuyers, type BuyerLog, type PaymentWindowRecord } from './buyers.ts';
import type { DropOptions } from './options.ts';
import type { Venue } from './venue.ts';

/** What the parent sends to start a share. */
export interface BuyerShareStart {
  type: 'start';
  apiUrl: string;
  simUrl: string;
  eventId: string;
  venue: Venue;
  options: DropOptions;
  /** The drop's start on the shared clock (performance.timeOrigin + performance.now()). */
  t0Epoch: number;
  share: { index: number; count: number };
  buyerSecret?: string;
}

/** What a share sends back. */
export type BuyerShareMessage =
  | { type: 'progress'; buyersDone: number; windows: PaymentWindowRecord[] }
  | { type: 'done'; log: BuyerLog; windows: PaymentWindowRecord[]; /** CPU seconds the share used, from its start. */ cpuSeconds: number }
  | { type: 'failed'; message: string }
  | { type: 'ready' };

/** How often a share reports its progress. */
const PROGRESS_MS = 250;

function send(message: BuyerShareMessage): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())));
}

async function runShare(start: BuyerShareStart): Promise<void> {
  const cpuAtStart = process.cpuUsage();
  const log = emptyBuyerLog();
  // Times in the log are from the drop's start, as the parent's are: translate the shared clock.
  const t0 = start.t0Epoch - performance.timeOrigin;
  let sent = 0;
  const flush = (): PaymentWindowRecord[] => {
    const windows = log.windows.slice(sent);
    sent = log.windows.length;
    return windows;
  };
  let reporting = Promise.resolve();
  const timer = setInterval(() => {
    reporting = reporting.then(() => send({ type: 'progress', buyersDone: log.buyersDone, windows: flush() })).catch(() => undefined);
  }, PROGRESS_MS);
  try {
    await runBuyers({ apiUrl: start.apiUrl, simUrl: start.simUrl, eventId: start.eventId, venue: start.venue, options: start.options, t0, log, share: start.share, ...(start.buyerSecret !== undefined ? { buyerSecret: start.buyerSecret } : {}) });
  } finally {
    clearInterval(timer);
    await reporting;
  }
  // The windows already streamed are not sent twice.
  const windows = flush();
  finished = true;
  const cpu = process.cpuUsage(cpuAtStart);
  await send({ type: 'done', log: { ...log, windows: [] }, windows, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
}

let finished = false;
// The parent lets go once it has the log; before that it went away (interrupted, crashed) and
// nothing is left to report to.
process.on('disconnect', () => process.exit(finished ? 0 : 1));
process.once('message', (message: BuyerShareStart) => {
  runShare(message).then(
    () => {
      finished = true;
    },
    async (error: unknown) => {
      await send({ type: 'failed', message: (error as Error).stack ?? String(error) }).catch(() => undefined);
      process.exit(1);
    },
  );
});
// Listening now: the parent sends the start only after this (a message before would be lost).
void send({ type: 'ready' });
