/**
 * Static checks of the container stack: docker-compose.yml, the Dockerfile, and the Grafana
 * provisioning and dashboards it mounts. Nothing here needs Docker; it catches the mistakes that
 * otherwise show up only at `docker compose up` (a renamed npm script, a missing mount, a dashboard
 * that does not load or queries a metric that does not exist).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { exportedMetricNames } from '@dropgate/telemetry';

const root = fileURLToPath(new URL('..', import.meta.url));
const at = (...parts: string[]): string => join(root, ...parts);

interface LongVolume {
  type?: string;
  source?: string;
  target?: string;
}
interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, unknown> | string[];
  volumes?: (string | LongVolume)[];
  ports?: (string | number | { target?: number; published?: string | number })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
}
interface ComposeFile {
  services?: Record<string, Service>;
}

const compose = parse(readFileSync(at('docker-compose.yml'), 'utf8')) as ComposeFile;
const services: Record<string, Service> = compose.services ?? {};
const scripts = (JSON.parse(readFileSync(at('package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

function service(name: string): Service {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
}

function commandLine(s: Service): string {
  return Array.isArray(s.command) ? s.command.join(' ') : (s.command ?? '');
}

function environment(s: Service): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(s.environment)) {
    for (const entry of s.environment) {
      const eq = entry.indexOf('=');
      out[eq < 0 ? entry : entry.slice(0, eq)] = eq < 0 ? '' : entry.slice(eq + 1);
    }
  } else {
    for (const [k, v] of Object.entries(s.environment ?? {})) out[k] = v === null || v === undefined ? '' : String(v);
  }
  return out;
}

/** Every string anywhere in a parsed YAML/JSON value. */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return [value.join(' '), ...value.flatMap(strings)];
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

/** npm scripts named by `npm run X`, `npm run-script X`, `npm start`, `npm test` in some text. */
function npmScripts(text: string): string[] {
  const names = [...text.matchAll(/\bnpm\s+(?:run|run-script)\s+([\w:.-]+)/g)].map((m) => m[1] as string);
  names.push(...[...text.matchAll(/\bnpm\s+(start|test)\b/g)].map((m) => m[1] as string));
  return names;
}

/** Host paths of bind mounts: short syntax `./x:/y[:ro]` or long syntax `{type: bind, source}`. */
function bindSources(s: Service): string[] {
  const out: string[] = [];
  for (const v of s.volumes ?? []) {
    if (typeof v === 'string') {
      const source = v.split(':')[0] ?? '';
      if (/^(\.{1,2}\/|\/|~)/.test(source) || source === '.') out.push(source);
    } else if (v.type === 'bind' && v.source) {
      out.push(v.source);
    }
  }
  return out;
}

function buildOf(s: Service): { context: string; dockerfile: string } | undefined {
  if (s.build === undefined) return undefined;
  if (typeof s.build === 'string') return { context: s.build, dockerfile: 'Dockerfile' };
  return { context: s.build.context ?? '.', dockerfile: s.build.dockerfile ?? 'Dockerfile' };
}

function dependsOn(s: Service): Record<string, string> {
  if (Array.isArray(s.depends_on)) return Object.fromEntries(s.depends_on.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(s.depends_on ?? {}).map(([k, v]) => [k, v.condition ?? 'service_started']));
}

function publishesPort(s: Service, port: number): boolean {
  return (s.ports ?? []).some((p) =>
    typeof p === 'object' ? p.target === port : new RegExp(`(^|:)${port}(/tcp)?$`).test(String(p)),
  );
}

describe('docker-compose.yml', () => {
  it('defines the stack services', () => {
    for (const name of ['redis', 'postgres', 'api', 'worker', 'portone-sim', 'prometheus', 'grafana']) {
      expect(Object.keys(services), `service ${name}`).toContain(name);
    }
  });

  it('names only npm scripts that exist in the root package.json', () => {
    const used = strings(compose).flatMap(npmScripts);
    expect(used).toEqual(expect.arrayContaining(['api', 'worker', 'sim']));
    for (const name of used) expect(Object.keys(scripts), `npm run ${name}`).toContain(name);
    expect(commandLine(service('api'))).toMatch(/\bnpm run api\b/);
    expect(commandLine(service('worker'))).toMatch(/\bnpm run worker\b/);
    expect(commandLine(service('portone-sim'))).toMatch(/\bnpm run sim\b/);
  });

  it('runs Redis without eviction and with an append-only file', () => {
    const redis = service('redis');
    expect(redis.image).toMatch(/^redis:7\b/);
    const cmd = commandLine(redis);
    expect(cmd).toMatch(/--maxmemory-policy\s+noeviction\b/);
    expect(cmd).toMatch(/--appendonly\s+yes\b/);
    expect(cmd).toMatch(/--appendfsync\s+everysec\b/);
    expect(redis.healthcheck?.test).toBeTruthy();
  });

  it('runs Postgres 15 with a healthcheck and no committed password', () => {
    const pg = service('postgres');
    expect(pg.image).toMatch(/^postgres:15\b/);
    expect(pg.healthcheck?.test).toBeTruthy();
    const env = environment(pg);
    if (env['POSTGRES_PASSWORD'] !== undefined) expect(env['POSTGRES_PASSWORD']).toMatch(/^\$\{POSTGRES_PASSWORD\b/);
    else expect(env['POSTGRES_HOST_AUTH_METHOD']).toBeTruthy();
  });

  it('bind-mounts only host paths that exist', () => {
    const all = Object.entries(services).flatMap(([name, s]) => bindSources(s).map((source) => ({ name, source })));
    expect(all.length).toBeGreaterThan(0);
    for (const { name, source } of all) {
      expect(existsSync(resolve(root, source)), `${name}: ${source}`).toBe(true);
    }
    const mounted = all.map(({ source }) => posix.normalize(source));
    expect(mounted).toEqual(expect.arrayContaining(['infra/prometheus/prometheus.yml', 'infra/prometheus/rules', 'infra/grafana/dashboards']));
    expect(mounted.some((m) => m.startsWith('infra/grafana/provisioning'))).toBe(true);
  });

  it('builds the API and the worker from the Dockerfile', () => {
    for (const name of ['api', 'worker', 'portone-sim']) {
      const build = buildOf(service(name));
      expect(build, `${name} build`).toBeDefined();
      if (!build) continue;
      expect(resolve(root, build.context)).toBe(resolve(root));
      expect(resolve(root, build.context, build.dockerfile)).toBe(at('Dockerfile'));
    }
  });

  it('wires the API and the worker to Redis, Postgres and the simulator', () => {
    for (const name of ['api', 'worker']) {
      const s = service(name);
      const env = environment(s);
      expect(env['HOST'], `${name} HOST`).toBe('0.0.0.0');
      expect(env['REDIS_URL']).toMatch(/^redis:\/\/redis(:6379)?(\/|$)/);
      expect(env['DATABASE_URL']).toMatch(/^postgres(ql)?:\/\/[^@]*@?postgres(:5432)?\//);
      expect(env['PORTONE_API_URL']).toContain('portone-sim:3100');
      const deps = dependsOn(s);
      expect(deps['redis']).toBe('service_healthy');
      expect(deps['postgres']).toBe('service_healthy');
    }
    expect(publishesPort(service('api'), 3000)).toBe(true);
  });

  it('commits no secrets: tokens, secrets and passwords come from the environment', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(environment(s))) {
        if (!/TOKEN|SECRET|PASSWORD|_KEY$/.test(key) || value === '') continue;
        expect(value, `${name}.${key}`).toMatch(new RegExp(`^\\$\\{${key}(:?[-?][^}]*)?\\}$`));
      }
    }
    // ADMIN_TOKEN has no default: compose refuses to start without it.
    expect(environment(service('api'))['ADMIN_TOKEN']).toMatch(/^\$\{ADMIN_TOKEN:?\?[^}]*\}$/);
  });
});

describe('docker-compose.yml, profile cluster', () => {
  // Compose resolves YAML merge keys (`<<`); read the file as it does.
  const merged = (parse(readFileSync(at('docker-compose.yml'), 'utf8'), { merge: true }) as ComposeFile).services ?? {};
  const inProfile = Object.entries(merged).filter(([, s]) => ((s as { profiles?: string[] }).profiles ?? []).includes('cluster'));
  const names = inProfile.map(([name]) => name);

  it('adds six Redis Cluster nodes, an init job that creates the cluster, two APIs and two workers', () => {
    const nodes = inProfile.filter(([, s]) => /--cluster-enabled yes/.test(commandLine(s)));
    expect(nodes.map(([n]) => n).sort()).toEqual(['redis-node-1', 'redis-node-2', 'redis-node-3', 'redis-node-4', 'redis-node-5', 'redis-node-6']);
    for (const [, s] of nodes) {
      expect(s.image).toMatch(/^redis:7\b/);
      expect(commandLine(s)).toMatch(/--maxmemory-policy noeviction\b/);
      expect(s.healthcheck?.test).toBeTruthy();
    }
    const init = merged['redis-cluster-init']!;
    expect(names).toContain('redis-cluster-init');
    expect(commandLine(init)).toMatch(/redis-cli --cluster create .* --cluster-replicas 1 --cluster-yes/);
    expect(Object.keys(dependsOn(init)).sort()).toEqual(nodes.map(([n]) => n).sort());
    for (const dep of Object.values(dependsOn(init))) expect(dep).toBe('service_healthy');
    const apis = inProfile.filter(([, s]) => /\bnpm run api\b/.test(commandLine(s)));
    const workers = inProfile.filter(([, s]) => /\bnpm run worker\b/.test(commandLine(s)));
    expect(apis).toHaveLength(2);
    expect(workers).toHaveLength(2);
    for (const [name, s] of [...apis, ...workers]) {
      const env = environment(s);
      expect(env['REDIS_CLUSTER_NODES']?.split(',').sort(), name).toEqual(nodes.map(([n]) => `${n}:6379`).sort());
      expect(env['HOST']).toBe('0.0.0.0');
      expect(env['ADMIN_TOKEN']).toMatch(/^\$\{ADMIN_TOKEN:?\?[^}]*\}$/);
      expect(dependsOn(s)['redis-cluster-init'], name).toBe('service_completed_successfully');
      expect(dependsOn(s)['postgres'], name).toBe('service_healthy');
      const build = buildOf(s);
      expect(build && resolve(root, build.context, build.dockerfile)).toBe(at('Dockerfile'));
    }
    // Both APIs reachable from the host, on different ports.
    const published = apis.map(([, s]) => String(s.ports?.[0]));
    expect(new Set(published).size).toBe(2);
    for (const [, s] of apis) expect(publishesPort(s, 3000)).toBe(true);
  });

  it('leaves the default stack alone: the single-Redis services have no profile', () => {
    for (const name of ['redis', 'postgres', 'api', 'worker', 'portone-sim', 'migrate']) {
      expect((merged[name] as { profiles?: string[] }).profiles, name).toBeUndefined();
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = existsSync(at('Dockerfile')) ? readFileSync(at('Dockerfile'), 'utf8') : '';

  it('exists, with a .dockerignore that keeps node_modules out', () => {
    expect(dockerfile).not.toBe('');
    expect(readFileSync(at('.dockerignore'), 'utf8')).toMatch(/node_modules/);
  });

  it('builds on node:24-slim with npm ci and runs as a non-root user', () => {
    const from = [...dockerfile.matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]);
    expect(from.length).toBeGreaterThan(0);
    expect(from.at(-1)).toBe('node:24-slim');
    expect(dockerfile).toMatch(/^RUN\s.*\bnpm ci\b/m);
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gim)].map((m) => m[1]);
    expect(users.at(-1), 'last USER').toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(users.at(-1));
  });

  it('names only npm scripts that exist', () => {
    for (const name of npmScripts(dockerfile.replace(/"\s*,\s*"/g, ' '))) expect(Object.keys(scripts)).toContain(name);
  });
});

// ------------------------------------------------------------------------------------------ Grafana

/** Metric names the services export (from packages/telemetry's registries), histograms without their suffixes. */
const KNOWN_METRICS = new Set(exportedMetricNames());

function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:dropgate|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''));
}

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: { uid?: string };
}
interface Variable {
  name?: string;
  type?: string;
  query?: string | { query?: string };
  definition?: string;
}
interface Dashboard {
  uid?: unknown;
  title?: unknown;
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function allPanels(panels: Panel[] = []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}

const dashboardDir = at('infra', 'grafana', 'dashboards');
const dashboardFiles = existsSync(dashboardDir) ? filesUnder(dashboardDir) : [];

describe('Grafana dashboards', () => {
  it('include the three dropgate dashboards', () => {
    const names = dashboardFiles.map((f) => relative(dashboardDir, f));
    expect(names).toEqual(expect.arrayContaining(['drop-overview.json', 'workers-queues.json', 'payments-refunds.json']));
  });

  it.each(dashboardFiles.map((f) => [relative(root, f), f]))('%s is valid JSON with a uid and a title', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    expect(() => JSON.parse(text) as unknown).not.toThrow();
    const dashboard = JSON.parse(text) as Dashboard;
    expect(typeof dashboard.uid).toBe('string');
    expect(String(dashboard.uid)).toMatch(/^[\w-]{1,40}$/);
    expect(typeof dashboard.title).toBe('string');
    expect(String(dashboard.title).trim()).not.toBe('');
  });

  it('have distinct uids', () => {
    const uids = dashboardFiles.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as Dashboard).uid);
    expect(new Set(uids).size).toBe(uids.length);
  });

  describe.each(dashboardFiles.filter((f) => f.endsWith('.json')).map((f) => [relative(root, f), f]))('%s', (_name, file) => {
    const dashboard = JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
    const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })));

    it('has event and instance variables fed by label_values queries', () => {
      const vars = dashboard.templating?.list ?? [];
      for (const name of ['event', 'instance']) {
        const v = vars.find((x) => x.name === name);
        expect(v, `variable ${name}`).toBeDefined();
        const query = typeof v?.query === 'string' ? v.query : (v?.query?.query ?? v?.definition ?? '');
        expect(query).toMatch(new RegExp(`^label_values\\(\\w+(\\{[^}]*\\})?,\\s*${name}\\)$`));
      }
    });

    it('has panels with distinct ids, each with a PromQL expr in targets', () => {
      expect(panels.length).toBeGreaterThan(0);
      const ids = allPanels(dashboard.panels).map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const p of panels) {
        expect(p.targets?.length, `${p.title} targets`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) expect(t.expr?.trim(), `${p.title} expr`).toBeTruthy();
      }
    });

    it('queries only exported metrics, with $event / $instance as regex matchers and no Grafana-only macros', () => {
      for (const { panel, expr } of exprs) {
        const names = metricNames(expr);
        expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
        for (const name of names) expect(KNOWN_METRICS.has(name), `${panel}: unknown metric ${name}`).toBe(true);
        for (const m of expr.matchAll(/\$\{?(\w+)/g)) expect(['event', 'instance'], `${panel}: ${m[0]}`).toContain(m[1]);
        // Every use of a variable is `=~"$var"`, so "All" (.*) and multi-value (a|b) both work.
        const stripped = expr.replace(/=~"\$(event|instance)"/g, '');
        expect(stripped, `${panel}: ${expr}`).not.toMatch(/\$/);
        expect(expr, `${panel}: filters by instance`).toContain('instance=~"$instance"');
      }
    });
  });

  it('are provisioned from the mounted directory, against the provisioned datasource', () => {
    const provider = parse(readFileSync(at('infra/grafana/provisioning/dashboards/dropgate.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    const datasources = parse(readFileSync(at('infra/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as {
      datasources: { uid: string; url: string; type: string }[];
    };
    const grafanaMounts = (service('grafana').volumes ?? []).filter((v): v is string => typeof v === 'string');
    const dashboardsTarget = grafanaMounts.find((v) => posix.normalize(v.split(':')[0] ?? '') === 'infra/grafana/dashboards')?.split(':')[1];
    expect(provider.providers.map((p) => p.options.path)).toContain(dashboardsTarget);

    const prometheusDs = datasources.datasources.find((d) => d.type === 'prometheus');
    expect(prometheusDs?.url).toBe('http://prometheus:9090');
    for (const file of dashboardFiles) {
      const dashboard = JSON.parse(readFileSync(file, 'utf8')) as Dashboard;
      for (const p of allPanels(dashboard.panels).filter((x) => x.type !== 'row')) {
        expect(p.datasource?.uid, `${relative(root, file)}: ${p.title}`).toBe(prometheusDs?.uid);
      }
    }
  });
});
