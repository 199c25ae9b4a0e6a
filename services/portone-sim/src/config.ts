/**
 * Configuration of `npm run sim`, read once from the environment. Only `main.ts` passes
 * `process.env` in; everything else receives the frozen result.
 */

/** Settings of the standalone simulator. */
export interface SimConfig {
  readonly port: number;
  readonly host: string;
  /**
   * V2, from the variables dropgate reads too, so one environment configures both sides: the first of
   * PORTONE_WEBHOOK_SECRET signs confirm calls and webhooks (unset: a random one, printed at start),
   * PORTONE_V2_STORE_ID is the store played, PORTONE_V2_API_SECRET the only API secret accepted.
   */
  readonly webhookSecret: string | undefined;
  readonly storeId: string | undefined;
  readonly v2ApiSecret: string | undefined;
}

/** An invalid environment variable; the message names it. */
export class SimConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  /** The offending variable. */
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(message);
    this.name = 'SimConfigError';
    this.variable = variable;
  }
}

/**
 * Reads `SIM_PORT` (default 3100), `HOST` (default 127.0.0.1) and the V2 settings (see SimConfig);
 * throws SimConfigError when invalid.
 */
export function readSimConfig(env: Readonly<Record<string, string | undefined>>): SimConfig {
  const rawPort = env['SIM_PORT'];
  let port = 3100;
  if (rawPort !== undefined && rawPort !== '') {
    port = /^\d{1,5}$/.test(rawPort) ? Number(rawPort) : Number.NaN;
    if (!(port >= 0 && port <= 65535)) {
      throw new SimConfigError('SIM_PORT', `SIM_PORT must be an integer port from 0 to 65535, got ${JSON.stringify(rawPort)}`);
    }
  }
  const rawHost = env['HOST'];
  const host = rawHost === undefined || rawHost === '' ? '127.0.0.1' : rawHost.trim();
  if (host === '' || /\s/.test(host)) throw new SimConfigError('HOST', `HOST must be a host name or address, got ${JSON.stringify(rawHost)}`);
  const webhookSecret = env['PORTONE_WEBHOOK_SECRET']?.split(',').map((s) => s.trim()).find(Boolean);
  if (webhookSecret !== undefined && !/^(whsec_)?[A-Za-z0-9+/]+={0,2}$/.test(webhookSecret)) {
    throw new SimConfigError('PORTONE_WEBHOOK_SECRET', 'PORTONE_WEBHOOK_SECRET must be "whsec_" and base64');
  }
  const optional = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  return Object.freeze({ port, host, webhookSecret, storeId: optional('PORTONE_V2_STORE_ID'), v2ApiSecret: optional('PORTONE_V2_API_SECRET') });
}
