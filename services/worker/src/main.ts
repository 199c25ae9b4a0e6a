/** `npm run worker`: the BullMQ workers, until SIGINT/SIGTERM. */
import { setPriority } from 'node:os';
import { pino } from 'pino';
import { loadConfigOrExit } from '@dropgate/config';
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
// Postgres or Redis may not accept us yet (a deploy, a restart): keep trying instead of crashing.
let worker;
for (let attempt = 1; ; attempt++) {
  try {
    worker = await startWorker(config, { logger: pino({ name: 'dropgate-worker', level: config.logLevel }) });
    break;
  } catch (error) {
    if (attempt >= 30) throw error;
    log.warn({ err: error, attempt }, 'worker could not start yet; retrying');
    await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * attempt)));
  }
}
log.info({ metrics: worker.metricsUrl }, 'worker running');
const shutdown = async (signal: string) => {
  log.info({ signal }, 'closing');
  await worker.close();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown('SIGINT'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));
