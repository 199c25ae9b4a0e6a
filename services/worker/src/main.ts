/** `npm run worker`: the BullMQ workers, until SIGINT/SIGTERM. */
import { setPriority } from 'node:os';
import { pino } from 'pino';
import { assertPortFree, assertRedisReachable, closeOnSignals, exitOnStartupFailure, explainStartupFailure, loadConfigOrExit } from '@dropgate/config';
import { createRedis } from '@dropgate/redis';
import { startWorker } from './worker.ts';

const log = pino({ name: 'dropgate-worker' });
const config = loadConfigOrExit((m) => log.fatal(m));
if (!config.portone.impKey) log.warn('PORTONE_IMP_KEY / PORTONE_IMP_SECRET are not set: PortOne REST calls will be refused by real PortOne');
if (config.workerNice > 0) {
  try {
    setPriority(config.workerNice);
  } catch (error) {
    log.warn({ err: error }, 'could not lower the worker CPU priority');
  }
}
// The metrics server would crash the process on a port in use (an unhandled 'error' event): check
// first, and stop with one line naming WORKER_METRICS_PORT.
try {
  await assertPortFree(config.host, config.workerMetricsPort, 'WORKER_METRICS_PORT');
} catch (error) {
  exitOnStartupFailure('dropgate-worker', error, config);
}
// Postgres or Redis may not accept us yet (a deploy, a restart): keep trying instead of crashing.
// What waiting cannot fix (a refused login, a database we may not create) stops at once; either way
// the last word is one line naming the variable to change.
let worker;
for (let attempt = 1; ; attempt++) {
  try {
    await assertRedisReachable(createRedis(config, { failFast: true, name: 'dropgate-worker-probe' }), config);
    worker = await startWorker(config, { logger: pino({ name: 'dropgate-worker', level: config.logLevel }) });
    break;
  } catch (error) {
    const failure = explainStartupFailure(error, config);
    if (attempt >= 30 || (failure && !failure.transient)) exitOnStartupFailure('dropgate-worker', error, config);
    log.warn({ err: error, attempt }, `worker could not start yet${failure ? ` (${failure.message})` : ''}; retrying`);
    await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * attempt)));
  }
}
log.info({ metrics: worker.metricsUrl }, 'worker running');
closeOnSignals('dropgate-worker', () => worker.close(), { timeoutMs: config.shutdownTimeoutMs, log: (m, fields) => log.info(fields, m) });
