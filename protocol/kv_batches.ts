// Splits Deno KV mutations into groups that each fit one atomic operation (used by the server and client stores).

const MUTATIONS_PER_ATOMIC = 800;
const BYTES_PER_ATOMIC = 600_000;
/** Deno KV allows 81,920 bytes of keys (of sets) and 819,200 bytes in all per atomic: stay well below both. */
const KEY_BYTES_PER_ATOMIC = 60_000;

/** A rough upper bound of the encoded size of a KV key. */
function keyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += part.length * 3 + 2;
    else if (part instanceof Uint8Array) n += part.length * 2 + 2;
    else n += 10;
  }
  return n;
}

/** A rough upper bound of the encoded size of a KV value. */
function valueBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.length + 16;
  return JSON.stringify(value ?? null).length * 2 + 64;
}

/** Splits mutations into groups that each fit one KV atomic operation. */
export function splitMutations<T extends [Deno.KvKey, unknown, ...unknown[]]>(mutations: T[]): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let keys = 0;
  let total = 0;
  for (const mutation of mutations) {
    const k = keyBytes(mutation[0]);
    const v = mutation[1] === null ? 0 : valueBytes(mutation[1]);
    if (
      group.length > 0 &&
      (group.length >= MUTATIONS_PER_ATOMIC || keys + k > KEY_BYTES_PER_ATOMIC ||
        total + k + v > BYTES_PER_ATOMIC)
    ) {
      groups.push(group);
      group = [];
      keys = 0;
      total = 0;
    }
    group.push(mutation);
    keys += k;
    total += k + v;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** Writes mutations (a null value deletes) in as few atomic operations as the KV limits allow. */
export async function writeMutations(kv: Deno.Kv, mutations: [Deno.KvKey, unknown][]): Promise<void> {
  for (const group of splitMutations(mutations)) {
    const atomic = kv.atomic();
    for (const [key, value] of group) value === null ? atomic.delete(key) : atomic.set(key, value);
    await atomic.commit();
  }
}

/**
 * Packs units of mutations (each must land in one atomic with the others of its unit) into as few groups as
 * the KV limits allow, in order. A unit too big for one atomic is split as {@linkcode splitMutations} would.
 */
export function packUnits<T extends [Deno.KvKey, unknown]>(units: T[][]): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let keys = 0;
  let total = 0;
  for (const unit of units) {
    let k = 0;
    let t = 0;
    for (const [key, value] of unit) {
      const kb = keyBytes(key);
      k += kb;
      t += kb + (value === null ? 0 : valueBytes(value));
    }
    if (
      group.length > 0 &&
      (group.length + unit.length > MUTATIONS_PER_ATOMIC || keys + k > KEY_BYTES_PER_ATOMIC ||
        total + t > BYTES_PER_ATOMIC)
    ) {
      groups.push(group);
      group = [];
      keys = 0;
      total = 0;
    }
    if (unit.length > MUTATIONS_PER_ATOMIC || k > KEY_BYTES_PER_ATOMIC || t > BYTES_PER_ATOMIC) {
      groups.push(...splitMutations(unit));
      continue;
    }
    group.push(...unit);
    keys += k;
    total += t;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
