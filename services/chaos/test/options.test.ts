/** `npm run chaos` options: the parts a campaign's shape depends on. */
import { describe, expect, it } from 'vitest';
import { parseChaosArgs, UsageError } from '../src/options.ts';

describe('chaos options', () => {
  it('one worker unless --workers says more; the faults strike the first, the others stand by', () => {
    expect(parseChaosArgs([]).workers).toBe(1);
    expect(parseChaosArgs(['--workers', '2']).workers).toBe(2);
    expect(parseChaosArgs(['--workers=4', '--replay', '16'])).toMatchObject({ workers: 4, replay: [16] });
  });

  it.each([['0'], ['5'], ['two'], ['']])('refuses --workers %j', (value) => {
    expect(() => parseChaosArgs(['--workers', value])).toThrow(UsageError);
    expect(() => parseChaosArgs(['--workers', value])).toThrow('--workers needs an integer from 1 to 4');
  });
});
