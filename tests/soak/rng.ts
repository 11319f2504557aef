// Seeded pseudo-random numbers for the soak run: the same seed gives the same sequence on every machine.

/**
 * A small deterministic generator (mulberry32). Not for secrets: only for replayable test runs.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(10); // the same number in 0..9 for every run seeded 42
 * ```
 */
export class Rng {
  #state: number;

  /** Starts the sequence of `seed` (any integer; only its low 32 bits count). */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The next number in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n); 0 when n <= 0. */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor(this.next() * n);
  }

  /** An unsigned 32-bit integer, e.g. to seed content bytes. */
  u32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }

  /** A fixed-length vector of draws, so that a caller can consume the same amount whatever it decides. */
  draws(count: number): number[] {
    return Array.from({ length: count }, () => this.next());
  }
}

/** Index into a list of `length` items chosen by the draw `u` in [0, 1). */
export function indexOf(u: number, length: number): number {
  return Math.min(length - 1, Math.floor(u * length));
}

/** Picks a key of `weights` by the draw `u` in [0, 1), each in proportion to its weight (weights >= 0). */
export function weighted<K extends string>(u: number, weights: Record<K, number>): K {
  const entries = Object.entries(weights) as [K, number][];
  const total = entries.reduce((sum, [, w]) => sum + Math.max(0, w), 0);
  let at = u * total;
  for (const [key, w] of entries) {
    if (w <= 0) continue;
    if (at < w) return key;
    at -= w;
  }
  return entries.filter(([, w]) => w > 0).at(-1)![0];
}
