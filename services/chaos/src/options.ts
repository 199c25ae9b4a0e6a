/** `npm run chaos` options. */
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSeed } from './random.ts';

export interface ChaosOptions {
  seed: number;
  scenarios: number;
  replay: number[];
  durationSeconds: number | null;
  parallel: number;
  /** Worker processes (the faults strike the first; the others stand by and take its jobs over). */
  workers: number;
  settleTimeoutSeconds: number;
  logDir: string;
  verbose: boolean;
  help: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function helpText(): string {
  return [
    'npm run chaos -- [--scenarios N] [--seed S] [--replay SEED ...] [options]',
    '',
    'A randomized campaign of faults and adversaries against the real stack (API and worker as child',
    'processes, the PortOne simulator, a private redis-server and a private Postgres cluster). Each',
    'scenario is generated from its seed: a small event, a few orders, genuine payments (paid, failed,',
    'abandoned, failed then paid, paid after the hold expired, paid twice, without confirm, tampered),',
    'cancels at PortOne, duplicated/reordered/delayed/lost webhooks, forged webhooks and confirms, PortOne',
    'REST outages, worker SIGKILL, Redis FLUSHALL and Postgres restarts. After each one settles, every',
    'invariant of design.md is checked, and every order against the simulator\'s ledger.',
    '',
    '  --scenarios N          scenarios to run (default 20)',
    '  --seed S               campaign seed (default random); scenario seeds derive from it',
    '  --replay SEED          run this scenario seed only (repeat the option for several)',
    '  --duration SECONDS     stop starting scenarios after this long (with a large --scenarios)',
    '  --parallel P           scenarios without a global fault run P at once (default 3)',
    '  --workers W            worker processes (default 1); the faults strike the first, the others',
    '                         take its jobs over while it is dead or frozen',
    '  --settle-timeout SEC   how long a scenario may take to come to rest (default 60)',
    '  --log-dir DIR          API/worker logs and one file per failed scenario (default a temp dir)',
    '  --verbose              print every scenario\'s timeline, not only failures\'',
    '',
    'Exit status: 0 no violation, 1 a violation (each failure prints its seed and replay command), 2 usage.',
  ].join('\n');
}

function intArg(name: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${name} needs an integer from ${min} to ${max}, got ${JSON.stringify(value ?? '')}`);
  }
  return Number(value);
}

export function parseChaosArgs(argv: readonly string[]): ChaosOptions {
  const o: ChaosOptions = {
    seed: randomInt(0, 2 ** 32 - 1),
    scenarios: 20,
    replay: [],
    durationSeconds: null,
    parallel: 3,
    workers: 1,
    settleTimeoutSeconds: 60,
    logDir: '',
    verbose: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--scenarios':
        o.scenarios = intArg(flag, value(), 1, 1_000_000);
        break;
      case '--seed': {
        const v = value();
        const s = parseSeed(v ?? '');
        if (s === null) throw new UsageError(`--seed needs an integer from 0 to 4294967295, got ${JSON.stringify(v ?? '')}`);
        o.seed = s;
        break;
      }
      case '--replay': {
        const v = value();
        const s = parseSeed(v ?? '');
        if (s === null) throw new UsageError(`--replay needs a scenario seed (an integer from 0 to 4294967295), got ${JSON.stringify(v ?? '')}`);
        o.replay.push(s);
        break;
      }
      case '--duration':
        o.durationSeconds = intArg(flag, value(), 1, 7 * 86_400);
        break;
      case '--parallel':
        o.parallel = intArg(flag, value(), 1, 16);
        break;
      case '--workers':
        o.workers = intArg(flag, value(), 1, 4);
        break;
      case '--settle-timeout':
        o.settleTimeoutSeconds = intArg(flag, value(), 5, 3_600);
        break;
      case '--log-dir': {
        const v = value();
        if (!v) throw new UsageError('--log-dir needs a directory');
        o.logDir = v;
        break;
      }
      case '--verbose':
        o.verbose = true;
        break;
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown option ${arg} (see --help)`);
    }
  }
  if (o.durationSeconds !== null && !argv.some((a) => a.startsWith('--scenarios'))) o.scenarios = 1_000_000;
  o.logDir ||= join(tmpdir(), `dropgate-chaos-${o.replay.length > 0 ? `replay-${o.replay[0]}` : o.seed}-${process.pid}`);
  return o;
}
