/**
 * `npm run sim`: the PortOne V1 simulator as a standalone service, for rehearsals, `npm run drop`
 * and load tests. Listens on SIM_PORT (default 3100) and HOST (default 127.0.0.1).
 */
import { readSimConfig, SimConfigError, type SimConfig } from './config.ts';
import { startSimulator } from './index.ts';

function loadConfig(): SimConfig {
  try {
    return readSimConfig(process.env);
  } catch (err) {
    // A bad variable stops start-up with its name, not a stack trace.
    if (err instanceof SimConfigError) {
      console.error(`portone-sim: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

const config = loadConfig();

const sim = await startSimulator({ port: config.port, host: config.host, logLevel: 'warn' });
console.log(`portone-sim: PortOne V1 simulator listening on ${sim.url} (controls under ${sim.url}/sim)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void sim.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('portone-sim: error while closing', err);
        process.exit(1);
      },
    );
  });
}
