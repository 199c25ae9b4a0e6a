/**
 * The Prometheus configuration, recording rules and alerts in infra/prometheus, checked and unit
 * tested with promtool (`apt-get install prometheus` provides it). Also checks that every alert has
 * a promtool test case where it fires and one where it stays quiet.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { exportedMetricNames } from '@dropgate/telemetry';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'infra', 'prometheus');
const ruleFiles = readdirSync(join(dir, 'rules')).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, 'rules', f));
const testFiles = readdirSync(join(dir, 'tests')).filter((f) => /\.test\.ya?ml$/.test(f)).map((f) => join(dir, 'tests', f));

/** Runs promtool; a missing promtool fails the test with how to install it. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const bin = process.env['PROMTOOL'] ?? 'promtool';
  const result = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (result.error) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? `promtool not found (${bin}). Install it with: apt-get update && apt-get install -y prometheus ` +
            '(or set PROMTOOL to its path)'
        : `promtool failed to run: ${result.error.message}`,
    );
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface AlertTest {
  alertname: string;
  eval_time: string;
  exp_alerts?: unknown[] | null;
}
interface TestFile {
  rule_files: string[];
  tests: { alert_rule_test?: AlertTest[] }[];
}

const rules = ruleFiles.flatMap((f) => (parse(readFileSync(f, 'utf8')) as RuleFile).groups.flatMap((g) => g.rules));
const alerts = rules.filter((r): r is Rule & { alert: string } => typeof r.alert === 'string');
const records = rules.filter((r): r is Rule & { record: string } => typeof r.record === 'string');
const alertTests = testFiles.flatMap((f) =>
  (parse(readFileSync(f, 'utf8')) as TestFile).tests.flatMap((t) => t.alert_rule_test ?? []),
);

/** Metric names the services export (from packages/telemetry's registries), histograms without their suffixes. */
const KNOWN_METRICS = new Set(exportedMetricNames());

describe('promtool', () => {
  it('accepts the rule files', () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    const { status, output } = promtool('check', 'rules', ...ruleFiles.map((f) => relative(root, f)));
    expect(output).toMatch(/SUCCESS/);
    expect(status, output).toBe(0);
  });

  it('accepts prometheus.yml (and the rule files it loads)', () => {
    const { status, output } = promtool('check', 'config', relative(root, join(dir, 'prometheus.yml')));
    expect(status, output).toBe(0);
    expect(output).toMatch(/SUCCESS: [1-9]\d* rule files? found/);
  });

  // promtool evaluates hours of series at one-minute steps (about 7 CPU-seconds): on two cores
  // shared with six other test files it took over a minute once. It may run as long as promtool's
  // own limit (120 s above).
  it('passes the rule unit tests', { timeout: 150_000 }, () => {
    expect(testFiles.length).toBeGreaterThan(0);
    const { status, output } = promtool('test', 'rules', ...testFiles.map((f) => relative(root, f)));
    expect(status, output).toBe(0);
    expect(output).not.toMatch(/FAILED/);
  });
});

describe('prometheus.yml', () => {
  const config = parse(readFileSync(join(dir, 'prometheus.yml'), 'utf8')) as {
    global?: { scrape_interval?: string };
    rule_files?: string[];
    scrape_configs: {
      job_name: string; scrape_interval?: string; static_configs?: { targets: string[] }[];
      dns_sd_configs?: { names: string[]; type?: string; port?: number }[];
    }[];
  };

  it('scrapes every API service of docker-compose.yml on :3000 and every worker on :3001, every 5 s', () => {
    const targets = config.scrape_configs.flatMap((s) => [
      ...(s.static_configs ?? []).flatMap((c) => c.targets),
      ...(s.dns_sd_configs ?? []).flatMap((c) => c.names.map((n) => `${n}:${c.port}`)),
    ].map((t) => ({ t, job: s.job_name, interval: s.scrape_interval ?? config.global?.scrape_interval })));
    // Compose resolves YAML merge keys (`<<`): read the file as it does.
    const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { command?: string[] }> };
    const running = (part: string) => Object.entries(compose.services).filter(([, s]) => s.command?.join(' ') === `npm run ${part}`).map(([name]) => name);
    expect(running('api')).toEqual(['api', 'api-1', 'api-2']);
    for (const [part, port, job] of [['api', 3000, 'dropgate-api'], ['worker', 3001, 'dropgate-worker']] as const) {
      expect(running(part).length).toBeGreaterThan(0);
      for (const service of running(part)) {
        const found = targets.find((x) => x.t === `${service}:${port}`);
        expect(found, `${service}:${port}`).toMatchObject({ job, interval: '5s' });
      }
    }
  });

  it('loads the rules directory', () => {
    expect(config.rule_files).toEqual(expect.arrayContaining([expect.stringMatching(/^rules\//)]));
  });
});

describe('recording rules and alerts', () => {
  it('record the SLO ratios over every window the burn-rate alerts read', () => {
    const names = records.map((r) => r.record);
    for (const w of ['5m', '30m', '1h', '6h']) {
      expect(names).toContain(`dropgate:confirm_slo:ratio_rate${w}`);
      expect(names).toContain(`dropgate:confirm_slo_errors:ratio_rate${w}`);
    }
  });

  it('define the alerts the runbook expects', () => {
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'DropgateConfirmErrorBudgetFastBurn', 'DropgateConfirmErrorBudgetSlowBurn', 'DropgateConfirmDeadlineMissed',
        'DropgateOversellPrevented', 'DropgateQueueBacklogGrowing', 'DropgateHoldsOverdue', 'DropgateRefundSpike',
        'DropgateRedisUnreachable', 'DropgatePostgresUnreachable', 'DropgateNotReady', 'DropgateJobsFailedForGood',
        'DropgateQueueStalled', 'DropgateLedgerFoundPayments', 'DropgateClockOff', 'DropgateClockUnsynced',
        'DropgateClockJumped',
      ]),
    );
    const fast = alerts.find((a) => a.alert === 'DropgateConfirmErrorBudgetFastBurn')?.expr ?? '';
    expect(fast).toMatch(/ratio_rate1h\s*>\s*\(?14\.4 \* 0\.001/);
    expect(fast).toMatch(/ratio_rate5m\s*>\s*\(?14\.4 \* 0\.001/);
    const slow = alerts.find((a) => a.alert === 'DropgateConfirmErrorBudgetSlowBurn')?.expr ?? '';
    expect(slow).toMatch(/ratio_rate6h\s*>\s*\(?6 \* 0\.001/);
    expect(slow).toMatch(/ratio_rate30m\s*>\s*\(?6 \* 0\.001/);
  });

  it('give every alert a severity, a summary and a description', () => {
    for (const a of alerts) {
      expect(['page', 'ticket'], `${a.alert} severity`).toContain(a.labels?.['severity']);
      expect(a.annotations?.['summary'], `${a.alert} summary`).toBeTruthy();
      expect(a.annotations?.['description'], `${a.alert} description`).toBeTruthy();
    }
  });

  it('have names unique across the rule files', () => {
    const names = alerts.map((a) => a.alert);
    expect(new Set(names).size).toBe(names.length);
  });

  it('read only metrics the services export', () => {
    for (const r of rules) {
      for (const m of r.expr.matchAll(/\bdropgate_[a-z0-9_]+/g)) {
        const name = m[0].replace(/_(bucket|count|sum)$/, '');
        expect(KNOWN_METRICS.has(name), `${r.alert ?? r.record}: unknown metric ${m[0]}`).toBe(true);
      }
    }
  });

  it('test every alert both firing and quiet', () => {
    for (const a of alerts) {
      const cases = alertTests.filter((t) => t.alertname === a.alert);
      expect(cases.some((t) => (t.exp_alerts ?? []).length > 0), `${a.alert}: a promtool case where it fires`).toBe(true);
      expect(cases.some((t) => (t.exp_alerts ?? []).length === 0), `${a.alert}: a promtool case where it stays quiet`).toBe(true);
    }
    // And no test names an alert that does not exist.
    for (const t of alertTests) expect(alerts.map((a) => a.alert)).toContain(t.alertname);
  });
});
