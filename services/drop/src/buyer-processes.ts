/**
 * `--buyer-processes n`: the buyers spread over n child processes (buyer-process.ts), so that driving
 * tens of thousands of buyers (their HTTP clients, JSON, timers) does not share one event loop with
 * what it measures. Buyer `i` runs in process `i mod n` with its own random stream (seeded by `--seed`
 * and `i`, as in one process), so a seed gives the same buyers however they are spread. Each process
 * streams its payment windows to this one for the live progress and sends its whole log at the end;
 * the logs are merged into the caller's, as if one process had run every buyer.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BuyerShareMessage, BuyerShareStart } from './buyer-process.ts';
import type { BuyerLog, BuyersContext, PaymentWindowRecord } from './buyers.ts';

const CHILD = fileURLToPath(new URL('./buyer-process.ts', import.meta.url));

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Adds a share's final log (its windows already appended) to the drop's. */
function mergeLog(into: BuyerLog, from: BuyerLog): void {
  add(into.waitlist, from.waitlist);
  // One by one: a share can hold more records than a call takes arguments.
  for (const q of from.queue) into.queue.push(q);
  into.buyersStarted += from.buyersStarted;
  into.ordersCreated += from.ordersCreated;
  add(into.orderRefusals, from.orderRefusals);
  into.consoleCancels += from.consoleCancels;
  add(into.faults, from.faults);
  for (const e of from.errors) if (into.errors.length < 20) into.errors.push(e);
  into.lastWindowAt = Math.max(into.lastWindowAt, from.lastWindowAt);
}

/** Buyer processes forked and ready (so the drop's clock does not count their start-up). */
export interface BuyerProcesses {
  readonly count: number;
  /** CPU seconds the shares reported using, from their start to their end (0 before they ran). */
  cpuSeconds(): number;
  /**
   * Runs `ctx`'s buyers, share `i` in process `i`; resolves when every one is done, with `ctx.log`
   * holding all of them (windows in time order). `ctx.log.buyersDone` and `ctx.log.windows` grow
   * while they run. @throws when a process fails or exits before it reported.
   */
  run(ctx: BuyersContext): Promise<void>;
  /** Stops any process still running. */
  close(): Promise<void>;
}

/** Forks `count` buyer processes and waits until each listens. */
export async function forkBuyerProcesses(count: number): Promise<BuyerProcesses> {
  const children: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  const close = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(exits);
  };
  try {
    await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve, reject) => {
      // Only a CPU profile's flags are passed on (a test runner's loaders and conditions are not needed).
      const child = fork(CHILD, [], { serialization: 'advanced', execArgv: process.execArgv.filter((a) => a.startsWith('--cpu-prof')), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      exits.push(new Promise((r) => child.once('exit', () => r())));
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`a buyer process exited (${signal ?? code}) before it started`)));
      child.once('message', (m: BuyerShareMessage) => (m.type === 'ready' ? resolve() : reject(new Error(`a buyer process said ${m.type} first`))));
    })));
  } catch (error) {
    await close();
    throw error;
  }
  const cpu = { seconds: 0 };
  return { count, cpuSeconds: () => cpu.seconds, run: (ctx) => runShares(ctx, children, cpu), close };
}

async function runShares(ctx: BuyersContext, children: ChildProcess[], cpu: { seconds: number }): Promise<void> {
  const n = children.length;
  const done = new Array<number>(n).fill(0);
  const t0Epoch = performance.timeOrigin + ctx.t0;
  const append = (windows: PaymentWindowRecord[]) => {
    for (const w of windows) {
      ctx.log.windows.push(w);
      ctx.log.lastWindowAt = Math.max(ctx.log.lastWindowAt, w.t);
    }
  };
  const runOne = (child: ChildProcess, index: number) => new Promise<void>((resolve, reject) => {
    let finished = false;
    let failure: string | null = null;
    child.on('message', (m: BuyerShareMessage) => {
      if (m.type === 'progress') {
        done[index] = m.buyersDone;
        ctx.log.buyersDone = done.reduce((a, b) => a + b, 0);
        append(m.windows);
      } else if (m.type === 'done') {
        append(m.windows);
        mergeLog(ctx.log, m.log);
        cpu.seconds += m.cpuSeconds;
        done[index] = m.log.buyersDone;
        ctx.log.buyersDone = done.reduce((a, b) => a + b, 0);
        finished = true;
        // Let go: the process exits once the channel is closed.
        child.disconnect();
      } else if (m.type === 'failed') failure = m.message;
    });
    child.once('exit', (code, signal) => {
      if (finished && code === 0) resolve();
      else reject(new Error(`buyer process ${index + 1} of ${n} exited (${signal ?? code})${failure ? `: ${failure}` : finished ? '' : ' before it reported'}`));
    });
    const start: BuyerShareStart = {
      type: 'start', apiUrl: ctx.apiUrl, simUrl: ctx.simUrl, eventId: ctx.eventId, venue: ctx.venue, options: ctx.options, t0Epoch, share: { index, count: n },
      ...(ctx.buyerSecret !== undefined ? { buyerSecret: ctx.buyerSecret } : {}),
    };
    child.send(start);
  });
  await Promise.all(children.map(runOne));
  // Shares report in batches: put the windows in the order they returned, as one process logs them.
  ctx.log.windows.sort((a, b) => a.t - b.t);
}
