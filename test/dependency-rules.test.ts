/**
 * The lint step's import rules (.dependency-cruiser.cjs) hold for the tree, and can fail: a small tree
 * written for the purpose breaks each rule once and every rule reports it.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cruise, type IConfiguration, type ICruiseResult } from 'dependency-cruiser';

const require = createRequire(import.meta.url);
const rules = require('../.dependency-cruiser.cjs') as IConfiguration;

async function violations(paths: string[], overrides: IConfiguration['options'] = {}): Promise<string[]> {
  const result = await cruise(paths, { ...rules.options, ...overrides, ruleSet: { forbidden: rules.forbidden }, validate: true });
  const output = result.output as ICruiseResult;
  return output.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
}

describe('import rules', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dg-deps-'));
    const files: Record<string, string> = {
      'packages/low/src/index.ts': "import { x } from '../../../services/api/src/server.ts';\nexport const y = x;\n",
      'services/api/src/server.ts': "import { w } from '../../worker/src/main.ts';\nexport const x = w;\n",
      'services/worker/src/main.ts': "export const w = 1;\n",
      'services/stack/src/a.ts': "import { b } from './b.ts';\nexport const a = b;\n",
      'services/stack/src/b.ts': "import { a } from './a.ts';\nexport const b = a;\n",
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
  });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('the tree keeps every rule', async () => {
    expect(await violations(['packages', 'services', 'test', 'scripts'])).toEqual([]);
  }, 60_000);

  it('reports a package importing a service, a runnable importing another, a relative reach across workspaces, and a circle', async () => {
    const found = await violations(['packages', 'services'], { baseDir: dir, tsConfig: undefined, tsPreCompilationDeps: false });
    expect(found).toEqual(expect.arrayContaining([
      'packages-never-import-services: packages/low/src/index.ts -> services/api/src/server.ts',
      'runnables-import-packages-only: services/api/src/server.ts -> services/worker/src/main.ts',
      'workspaces-by-name-only: packages/low/src/index.ts -> services/api/src/server.ts',
      expect.stringMatching(/^no-circular: services\/stack\/src\/(a|b)\.ts -> services\/stack\/src\/(a|b)\.ts$/),
    ]));
  });
});
