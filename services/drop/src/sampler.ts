/**
 * Inventory over time: `GET /events/:id` every few hundred milliseconds, summed over seats and pools.
 * A sample the API sheds (503) is skipped, not invented.
 */

export interface InventorySample {
  /** ms since the drop started. */
  t: number;
  available: number;
  held: number;
  sold: number;
}

interface Availability {
  pools: { capacity: number; available: number; held: number; sold: number }[];
  seats: { total: number; available: number; held: number; sold: number };
}

/** Reads the event's availability, summed; null when the API does not answer 200. */
export async function readInventory(apiUrl: string, eventId: string): Promise<Omit<InventorySample, 't'> | null> {
  try {
    const res = await fetch(`${apiUrl}/events/${encodeURIComponent(eventId)}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { availability?: Availability };
    if (res.status !== 200 || !body.availability) return null;
    const a = body.availability;
    let available = a.seats.available;
    let held = a.seats.held;
    let sold = a.seats.sold;
    for (const p of a.pools) {
      available += p.available;
      held += p.held;
      sold += p.sold;
    }
    return { available, held, sold };
  } catch {
    return null;
  }
}

export interface Sampler {
  readonly samples: InventorySample[];
  latest(): InventorySample | null;
  /** Takes one more sample now, then stops. */
  stop(): Promise<void>;
}

export function startSampler(apiUrl: string, eventId: string, t0: number, intervalMs: number, onSample: (s: InventorySample) => void): Sampler {
  const samples: InventorySample[] = [];
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const take = async () => {
    const t = performance.now() - t0;
    const inv = await readInventory(apiUrl, eventId);
    if (!inv) return;
    const sample = { t: Math.max(0, t), ...inv };
    samples.push(sample);
    onSample(sample);
  };
  const loop = async () => {
    while (!stopped) {
      const started = performance.now();
      inFlight = take();
      await inFlight;
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0 && !stopped) await new Promise((r) => setTimeout(r, wait));
    }
  };
  const running = loop();
  return {
    samples,
    latest: () => samples.at(-1) ?? null,
    async stop() {
      stopped = true;
      await running;
      await take();
    },
  };
}
