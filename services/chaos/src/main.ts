/** `npm run chaos`: the randomized campaign; see `--help`. Exit 0 when no invariant broke, 1 otherwise. */
import { runCampaign } from './campaign.ts';
import { UsageError, helpText, parseChaosArgs, type ChaosOptions } from './options.ts';
import { summaryText } from './report.ts';

let options: ChaosOptions;
try {
  options = parseChaosArgs(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`chaos: ${error.message}`);
  process.exit(2);
}
if (options.help) {
  console.log(helpText());
  process.exit(0);
}

const abort = new AbortController();
process.on('SIGINT', () => {
  if (abort.signal.aborted) process.exit(130);
  console.log('\nSIGINT: finishing the running scenarios, then stopping (again to quit at once)');
  abort.abort();
});

const replaying = options.replay.length > 0;
console.log(replaying
  ? `chaos: replaying scenario seed(s) ${options.replay.join(', ')}`
  : `chaos: campaign seed ${options.seed}, ${options.durationSeconds !== null ? `for ${options.durationSeconds} s` : `${options.scenarios} scenarios`}, up to ${options.parallel} at once`);
const campaign = await runCampaign({
  seed: options.seed,
  scenarios: options.scenarios,
  replay: options.replay,
  durationSeconds: options.durationSeconds,
  parallel: options.parallel,
  workers: options.workers,
  settleTimeoutMs: options.settleTimeoutSeconds * 1000,
  logDir: options.logDir,
  verbose: options.verbose || replaying,
  out: (line) => console.log(line),
  signal: abort.signal,
});
console.log(summaryText(campaign.results, campaign.elapsedMs, { parallel: options.parallel, campaignSeed: replaying ? null : options.seed, logDir: options.logDir }));
process.exit(campaign.results.every((r) => r.ok) && campaign.results.length > 0 ? 0 : 1);
