/**
 * The k6 load tests (loadtest/), checked with no k6: each script loads as an ES module against a
 * stand-in of the k6 API (test/support/k6-stand-in.ts), its scenarios and thresholds are what k6
 * accepts, and setup, one iteration of each scenario and teardown run against a stand-in dropgate
 * without throwing. `npm run loadtest` (loadtest/run.sh) runs k6 from PATH, else k6's container image
 * through docker, and never builds k6.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkOptions, loadK6Script, type HttpAnswer, type HttpRequest, type LoadedScript } from './support/k6-stand-in.ts';

const root = resolve(import.meta.dirname, '..');
const scripts = readdirSync(join(root, 'loadtest')).filter((f) => f.endsWith('.js'));
const ENV = { ADMIN_TOKEN: 'k6-admin-token-0123456789', VUS: '3', DURATION: '5s' };
const tmp = mkdtempSync(join(tmpdir(), 'dropgate-loadtest-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Confirm = 'approve' | 'sold-out' | 'crash';

/** dropgate as the scripts expect it to answer, with the confirm answer chosen by the test. */
function dropgate(confirm: Confirm = 'approve'): (req: HttpRequest) => HttpAnswer {
  return ({ method, url, body }) => {
    const path = new URL(url).pathname;
    const json = typeof body === 'string' ? (JSON.parse(body) as Record<string, unknown>) : {};
    if (method === 'POST' && path === '/admin/events') return { status: 201, body: { id: json.id, name: json.name } };
    const order = /^\/events\/([^/]+)\/orders$/.exec(path);
    if (method === 'POST' && order) return { status: 201, body: { merchant_uid: `${decodeURIComponent(order[1]!)}.abcdefghijk`, amount: 99_000, currency: 'KRW', status: 'pending', order_token: 't' } };
    if (method === 'POST' && path === '/portone/v1/confirm') {
      if (confirm === 'approve') return { status: 200, body: { approved: true, hold_expires_at: new Date().toISOString() } };
      if (confirm === 'sold-out') return { status: 409, body: { code: 'SOLD_OUT', reason: '매진되었습니다', message: 'sold out' } };
      return { status: 500, body: 'Internal Server Error' };
    }
    if (method === 'GET' && /^\/events\/[^/]+$/.test(path)) {
      return { status: 200, body: { availability: { pools: [{ id: 'ga', capacity: 1000, available: 999, held: 1, sold: 0 }], seats: { total: 1000, available: 999, held: 1, sold: 0 } } } };
    }
    return { status: 404, body: { code: 'NOT_FOUND', message: `${method} ${path}` } };
  };
}

function exportedFunctions(loaded: LoadedScript): string[] {
  return Object.entries(loaded.module).filter(([, v]) => typeof v === 'function').map(([k]) => k);
}

/** setup, one iteration of every scenario (its exec function), teardown: as k6 would call them. */
function runOnce(loaded: LoadedScript): void {
  const m = loaded.module as Record<string, ((data?: unknown) => unknown) | undefined> & { options?: { scenarios?: Record<string, { exec?: string; executor: string }> } };
  const data = m.setup ? loaded.call(() => m.setup!()) : undefined;
  const scenarios = Object.entries(m.options?.scenarios ?? { default: { executor: 'per-vu-iterations' } });
  scenarios.forEach(([name, s], i) => {
    const fn = m[s.exec ?? 'default'];
    if (typeof fn !== 'function') throw new Error(`scenario ${name}: no function ${s.exec ?? 'default'}`);
    loaded.call(() => fn(data), { vu: i + 1, iteration: 0, scenario: name, executor: s.executor });
  });
  if (m.teardown) loaded.call(() => m.teardown!(data));
}

describe.each(scripts)('loadtest/%s', (file) => {
  it('loads against the k6 stand-in, with valid scenarios and thresholds', async () => {
    const loaded = await loadK6Script(join(root, 'loadtest', file), ENV, dropgate());
    const options = loaded.module.options as { scenarios?: object; thresholds?: object } | undefined;
    expect(options?.scenarios, 'options.scenarios').toBeTypeOf('object');
    expect(options?.thresholds, 'options.thresholds').toBeTypeOf('object');
    expect(checkOptions(options, loaded.standIn.metrics, exportedFunctions(loaded))).toEqual([]);
  });

  it('runs setup, one iteration of each scenario and teardown without throwing, every check passing', async () => {
    const loaded = await loadK6Script(join(root, 'loadtest', file), ENV, dropgate());
    runOnce(loaded);
    expect(loaded.standIn.requests.length).toBeGreaterThan(0);
    expect(loaded.standIn.checks.length).toBeGreaterThan(0);
    expect(loaded.standIn.checks.filter((c) => !c.ok)).toEqual([]);
  });
});

describe('loadtest/drop.js', () => {
  const DROP = join(root, 'loadtest', 'drop.js');
  const samples = (loaded: LoadedScript, metric: string) => (loaded.standIn.metrics.get(metric)?.samples ?? []).map((s) => s.value);

  it('plays a buyer: creates the event, an order, confirms it as PortOne would, and reads availability', async () => {
    const loaded = await loadK6Script(DROP, ENV, dropgate());
    runOnce(loaded);
    expect(loaded.standIn.requests.map((r) => `${r.method} ${new URL(r.url).pathname.replace(/k6-\d+/, ':id')}`)).toEqual([
      'POST /admin/events', 'POST /events/:id/orders', 'POST /portone/v1/confirm', 'GET /events/:id',
    ]);
    const confirm = loaded.standIn.requests[2]!;
    expect(JSON.parse(confirm.body as string)).toMatchObject({ merchant_uid: expect.stringMatching(/\.abcdefghijk$/), amount: 99_000, imp_uid: expect.any(String) });
    expect(confirm.params?.tags?.name).toBe('confirm');
    expect(samples(loaded, 'dropgate_confirm_approved')).toEqual([1]);
    expect(samples(loaded, 'dropgate_malformed_answers')).toEqual([]);
  });

  it('counts a refusal as an answer, and a 500 as unexpected and malformed (its thresholds can fail)', async () => {
    const refused = await loadK6Script(DROP, ENV, dropgate('sold-out'));
    runOnce(refused);
    expect(samples(refused, 'dropgate_confirm_refusals')).toEqual([1]);
    expect(samples(refused, 'dropgate_confirm_approved')).toEqual([0]);
    expect(samples(refused, 'dropgate_unexpected_5xx')).toEqual([]);
    expect(refused.standIn.checks.filter((c) => !c.ok)).toEqual([]);

    const crashed = await loadK6Script(DROP, ENV, dropgate('crash'));
    runOnce(crashed);
    expect(samples(crashed, 'dropgate_unexpected_5xx')).toEqual([1]);
    expect(samples(crashed, 'dropgate_malformed_answers')).toEqual([1]);
    expect(crashed.standIn.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([
      'confirm answers 200 {approved:true} or a refusal {code, reason}',
      'confirm: no 5xx except 503 NOT_READY/OVERLOADED',
    ]);
  });

  it('takes its budget and size from the environment, and refuses a bad value at load', async () => {
    const loaded = await loadK6Script(DROP, { ...ENV, CONFIRM_BUDGET_MS: '1500', VUS: '7' }, dropgate());
    const options = loaded.module.options as { scenarios: Record<string, { vus: number }>; thresholds: Record<string, string[]> };
    expect(options.thresholds.dropgate_confirm_duration).toEqual(['p(99)<1500']);
    expect(options.scenarios.drop!.vus).toBe(7);
    await expect(loadK6Script(DROP, { ...ENV, VUS: 'many' }, dropgate())).rejects.toThrow(/VUS must be a non-negative integer/);
  });

  it('without ADMIN_TOKEN, setup fails with a message naming it', async () => {
    const loaded = await loadK6Script(DROP, { VUS: '1' }, dropgate());
    const setup = loaded.module.setup as () => unknown;
    expect(() => loaded.call(setup)).toThrow(/ADMIN_TOKEN/);
  });
});

describe('checkOptions', () => {
  it('reports a broken options object, problem by problem', async () => {
    const loaded = await loadK6Script(join(root, 'loadtest', 'drop.js'), ENV, dropgate());
    const broken = {
      scenarios: {
        typo: { executor: 'constant-vu', vus: 10, duration: '30s' },
        noDuration: { executor: 'constant-vus', vus: 10 },
        arrival: { executor: 'constant-arrival-rate', rate: 100, duration: '1m', preAllocatedVUs: 5, timeUnit: 'one second' },
        ramp: { executor: 'ramping-vus', stages: [{ duration: '10s', target: -1 }], vu: 3 },
        elsewhere: { executor: 'shared-iterations', exec: 'buyTickets' },
      },
      thresholds: {
        http_req_duration: ['p99<250'],
        'http_req_duration{name:confirm}': ['p(101)<250'],
        no_such_metric: ['count==0'],
        dropgate_confirm_approved: ['avg>0.5'],
        dropgate_confirm_duration: [{ threshold: 'p(95)<300', abortOnFail: true, abortAfter: '10s' }],
        checks: 'rate>0.99',
      },
      setupTimeout: 'two minutes',
    };
    const problems = checkOptions(broken, loaded.standIn.metrics, exportedFunctions(loaded));
    expect(problems).toEqual([
      expect.stringMatching(/^scenario typo: unknown executor "constant-vu"/),
      'scenario noDuration: constant-vus needs duration',
      'scenario arrival: timeUnit "one second" is not a duration',
      'scenario ramp: ramping-vus has no field vu',
      'scenario ramp: stages[0].target -1 is not a non-negative integer',
      'scenario elsewhere: exec "buyTickets" is not an exported function of the script',
      'threshold http_req_duration: "p99<250" does not parse (like p(99)<250, rate<0.01, count==0)',
      'threshold http_req_duration{name:confirm}: percentile 101 is outside 0..100',
      'threshold no_such_metric: metric no_such_metric is neither a k6 built-in nor created by the script',
      'threshold dropgate_confirm_approved: avg does not apply to dropgate_confirm_approved, a rate',
      'threshold dropgate_confirm_duration: unknown fields abortAfter',
      'threshold checks: must be a non-empty array of expressions',
      'setupTimeout "two minutes" is not a duration',
    ]);
  });

  it('accepts what k6 accepts', () => {
    const metrics = new Map([['orders', { type: 'counter' as const }]]);
    expect(checkOptions({
      scenarios: {
        a: { executor: 'ramping-arrival-rate', startRate: 0, timeUnit: '1s', preAllocatedVUs: 10, maxVUs: 50, stages: [{ duration: '1m30s', target: 200 }] },
        b: { executor: 'per-vu-iterations', vus: 2, iterations: 5, maxDuration: '10m', startTime: '30s', exec: 'default' },
      },
      thresholds: { 'http_req_duration{name:confirm,status:200}': ['p(99.9) < 250', 'med<=20'], http_req_failed: ['rate<0.01'], orders: ['count>=1', { threshold: 'rate>0', abortOnFail: true, delayAbortEval: '10s' }], vus: ['value>0'] },
    }, metrics, ['default'])).toEqual([]);
  });
});

describe('npm run loadtest (loadtest/run.sh)', () => {
  /** A PATH of its own: bash's helpers, plus fake k6 / docker / go that record how they were called. */
  function sandbox(fakes: Array<'k6' | 'docker' | 'go'>): { bin: string; log: string } {
    const dir = mkdtempSync(join(tmp, 'path-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['dirname', 'grep']) symlinkSync(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), join(bin, tool));
    const log = join(dir, 'calls.log');
    for (const fake of fakes) {
      writeFileSync(join(bin, fake), `#!/bin/sh\necho "${fake} $*" >> "${log}"\n/usr/bin/env | /usr/bin/grep -E '^(ADMIN_TOKEN|VUS|K6_[A-Z_]+)=' | /usr/bin/sort | /usr/bin/sed 's/^/  env /' >> "${log}"\n`);
      chmodSync(join(bin, fake), 0o755);
    }
    return { bin, log };
  }
  const run = (bin: string, env: Record<string, string>, args: string[] = []) =>
    spawnSync('/bin/bash', [join(root, 'loadtest', 'run.sh'), ...args], { env: { PATH: bin, ...env }, encoding: 'utf8', timeout: 30_000 });
  const calls = (log: string) => {
    try {
      return readFileSync(log, 'utf8').trim().split('\n').filter((l) => !l.startsWith('  env '));
    } catch {
      return [];
    }
  };

  it('runs the k6 on PATH with the arguments given, and never builds k6', () => {
    const { bin, log } = sandbox(['k6', 'docker', 'go']);
    const result = run(bin, { ADMIN_TOKEN: ENV.ADMIN_TOKEN }, ['--vus', '5']);
    expect(result.status, result.stderr).toBe(0);
    expect(calls(log)).toEqual([`k6 run --vus 5 ${join(root, 'loadtest', 'drop.js')}`]);
  });

  it('without k6 on PATH, runs the grafana/k6 image with docker, passing the variables drop.js reads', () => {
    const { bin, log } = sandbox(['docker', 'go']);
    const result = run(bin, { ADMIN_TOKEN: ENV.ADMIN_TOKEN, VUS: '9', K6_NO_USAGE_REPORT: 'true' }, ['--quiet']);
    expect(result.status, result.stderr).toBe(0);
    const [call] = calls(log);
    expect(calls(log)).toHaveLength(1);
    expect(call).toMatch(/^docker run --rm -i --network host /);
    expect(call).toContain('-e ADMIN_TOKEN');
    expect(call).toContain('-e VUS');
    expect(call).toContain('-e K6_NO_USAGE_REPORT');
    expect(call).not.toContain('-e SEATS');
    expect(call).toContain(`-v ${join(root, 'loadtest')}:/loadtest:ro grafana/k6:`);
    expect(call).toMatch(/ run --quiet \/loadtest\/drop\.js$/);
    expect(readFileSync(log, 'utf8')).toContain('  env VUS=9');
    expect(result.stderr).toContain('grafana/k6');
  });

  it('with neither, says what it needs and exits 1, still without building k6', () => {
    const { bin, log } = sandbox(['go']);
    const result = run(bin, { ADMIN_TOKEN: ENV.ADMIN_TOKEN });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/needs k6 on PATH.*docker/);
    expect(calls(log)).toEqual([]);
  });

  it('without ADMIN_TOKEN, says so before starting anything', () => {
    const { bin, log } = sandbox(['k6', 'docker']);
    const result = run(bin, {});
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('ADMIN_TOKEN');
    expect(calls(log)).toEqual([]);
  });
});
