/**
 * `npm run sim`: the PortOne V1 and V2 simulator as a standalone service, for rehearsals,
 * `npm run drop` and load tests. Listens on SIM_PORT (default 3100) and HOST (default 127.0.0.1).
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

/** Starts the simulator; a port in use (or not ours to take) stops start-up with one line naming the variable. */
async function start(): ReturnType<typeof startSimulator> {
  try {
    return await startSimulator({
      port: config.port, host: config.host, logLevel: 'warn',
      ...(config.webhookSecret ? { webhookSecret: config.webhookSecret } : {}),
      ...(config.storeId ? { storeId: config.storeId } : {}),
      ...(config.v2ApiSecret ? { v2ApiSecret: config.v2ApiSecret } : {}),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${config.host}:${config.port}`;
    const line =
      code === 'EADDRINUSE' ? `port ${config.port} is already in use (${where}): stop what listens there or set SIM_PORT to a free port`
        : code === 'EACCES' ? `port ${config.port} needs privileges this process does not have (${where}): set SIM_PORT to a port above 1023`
          : code === 'EADDRNOTAVAIL' ? `cannot listen on ${where}: ${config.host} is not an address of this machine; set HOST`
            : undefined;
    if (!line) throw err;
    console.error(`portone-sim: ${line}`);
    process.exit(1);
  }
}

const sim = await start();
console.log(`portone-sim: PortOne V1 and V2 simulator listening on ${sim.url} (controls under ${sim.url}/sim)`);
// A generated secret is printed so dropgate can be given it (PORTONE_WEBHOOK_SECRET); a configured one never is.
if (!config.webhookSecret) console.log(`portone-sim: V2 requests are signed with PORTONE_WEBHOOK_SECRET=${sim.webhookSecret} (store ${sim.storeId})`);

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
