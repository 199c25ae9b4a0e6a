/**
 * One Lua contract: every script's header declares exactly the KEYS and ARGV its body uses, numbered
 * from 1 without gaps, with as many KEYS as its file name says, and lists its return codes. A key the
 * body reads but the header omits, or one the header promises but the body never touches, fails here.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ScriptError } from '@dropgate/redis';

const LUA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'lua');
const files = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));

function indices(text: string, kind: 'KEYS' | 'ARGV'): number[] {
  return [...new Set([...text.matchAll(new RegExp(`${kind}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1])))].sort((a, b) => a - b);
}
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('Lua script headers', () => {
  it('finds the scripts', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });

  for (const file of files) {
    it(`${file}: the header declares exactly the KEYS and ARGV the body uses`, () => {
      const source = readFileSync(join(LUA_DIR, file), 'utf8');
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(source);
      expect(header, `${file} starts with a --[[ header ]]`).not.toBeNull();
      const body = source.slice(header![0].length);
      const declaredKeys = [...header![1]!.matchAll(/^\s*KEYS\[(\d+)\]/gm)].map((m) => Number(m[1]));
      const declaredArgs = [...header![1]!.matchAll(/^\s*ARGV\[(\d+)\]/gm)].map((m) => Number(m[1]));
      const numKeys = Number(/-(\d+)\.lua$/.exec(file)![1]);
      expect(declaredKeys, `${file}: KEYS declared in order, one per line`).toEqual(oneTo(numKeys));
      expect(declaredArgs, `${file}: ARGV declared in order, one per line`).toEqual(oneTo(declaredArgs.length));
      expect(indices(body, 'KEYS'), `${file}: KEYS used by the body`).toEqual(declaredKeys);
      expect(indices(body, 'ARGV'), `${file}: ARGV used by the body`).toEqual(declaredArgs);
      expect(header![1]).toMatch(/Output:/);
      // Every negative code a header lists is one of the shared table's, with the same meaning everywhere.
      const output = header![1]!.slice(header![1]!.indexOf('Output:'));
      const known = new Set<number>(Object.values(ScriptError));
      for (const m of output.matchAll(/^\s*(-\d+)\s/gm)) expect(known.has(Number(m[1])), `${file}: code ${m[1]} is in ScriptError`).toBe(true);
    });
  }
});
