/**
 * The group commit's batching rules on their own, with a write that records its batches in memory
 * (what a statement does with them is the other db tests' subject, against real Postgres).
 */
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/repositories/group-commit.ts';

/** A write that answers at once and keeps every batch it was given. */
function recordingWrite(): { batches: number[][]; write: (items: number[]) => Promise<number[]> } {
  const batches: number[][] = [];
  return { batches, write: async (items) => { batches.push([...items]); return items.map((i) => i * 10); } };
}

/** Submits 1..n, each on a later turn of the event loop than the one before (callers that trickle in). */
async function trickle(commit: GroupCommit<number, number>, n: number): Promise<number[]> {
  const started: Promise<number>[] = [];
  for (let i = 1; i <= n; i += 1) {
    started.push(commit.submit(i));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return Promise.all(started);
}

describe('group commit', () => {
  it('without a linger, a caller that finds the writer idle writes at once, alone', async () => {
    const { batches, write } = recordingWrite();
    const results = await trickle(new GroupCommit(write, { maxBatch: 100 }), 8);
    expect(results).toEqual([10, 20, 30, 40, 50, 60, 70, 80]);
    expect(batches).toEqual([[1], [2], [3], [4], [5], [6], [7], [8]]);
  });

  it('with a linger, callers that trickle in share one write, each with its own result', async () => {
    const { batches, write } = recordingWrite();
    const results = await trickle(new GroupCommit(write, { maxBatch: 100, lingerMs: 200 }), 8);
    expect(results).toEqual([10, 20, 30, 40, 50, 60, 70, 80]);
    expect(batches).toEqual([[1, 2, 3, 4, 5, 6, 7, 8]]);
  });

  it('a full batch does not wait out the linger', async () => {
    const { batches, write } = recordingWrite();
    const commit = new GroupCommit(write, { maxBatch: 3, lingerMs: 60_000 });
    const started = performance.now();
    expect(await Promise.all([commit.submit(1), commit.submit(2), commit.submit(3)])).toEqual([10, 20, 30]);
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('after a linger, the writer lingers again for the next callers', async () => {
    const { batches, write } = recordingWrite();
    // 200 ms, as above: a linger of 5 ms was shorter than three turns of a loaded machine's event loop
    // (one CI run split the first callers into [1, 2] and [3]).
    const commit = new GroupCommit(write, { maxBatch: 100, lingerMs: 200 });
    expect(await trickle(commit, 3)).toEqual([10, 20, 30]);
    expect(await trickle(commit, 2)).toEqual([10, 20]);
    expect(batches).toEqual([[1, 2, 3], [1, 2]]);
  });
});
