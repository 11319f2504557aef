// Table tests for the pure lock rules: taking, renewing, releasing, forcing, expiry and what the wire shows.
import assert from "node:assert/strict";
import type { EntryRecord } from "./metadata_store.ts";
import {
  blockingLock,
  decideLock,
  decideUnlock,
  isLive,
  type LockRecord,
  ownsNamespace,
  wireLocks,
} from "./lock_rules.ts";

const A = { user: "u", deviceId: "A", device: "dev-a" };
const B = { user: "u", deviceId: "B", device: "dev-b" };
const MIN = 60_000;
const FILE: EntryRecord = { path: "f", kind: "file", hash: "h", size: 1, mtime: 0, rev: 1, device: "x" };
const DIR: EntryRecord = { path: "f", kind: "dir", hash: "", size: 0, mtime: 0, rev: 1, device: "x" };

/** A lock on "f" held by `holder`, taken at 0, ending at `expires`, with a lease of `lease` ms. */
const held = (holder: typeof A, expires = 30 * MIN, lease = 30 * MIN): LockRecord => ({
  path: "f",
  ...holder,
  taken: 0,
  expires,
  leaseMs: lease,
});

const LOCK_CASES: [
  name: string,
  current: LockRecord | null,
  entry: EntryRecord | null,
  request: { holder: typeof A; minutes?: number; renew?: boolean; now: number },
  expect: string,
][] = [
  [
    "a free file gets the default lease of 30 minutes",
    null,
    FILE,
    { holder: A, now: 1000 },
    "new A 1000..1801000",
  ],
  ["a free file gets the lease asked for", null, FILE, { holder: A, minutes: 5, now: 0 }, "new A 0..300000"],
  [
    "a fraction of a minute is a lease too",
    null,
    FILE,
    { holder: A, minutes: 0.05, now: 0 },
    "new A 0..3000",
  ],
  [
    "the holder's LOCK renews from now for the lease's length",
    held(A, 10 * MIN, 10 * MIN),
    FILE,
    { holder: A, now: 8 * MIN },
    "renewed A 0..1080000",
  ],
  [
    "the holder may ask for another length",
    held(A),
    FILE,
    { holder: A, minutes: 60, now: MIN },
    "renewed A 0..3660000",
  ],
  ["another device's live lock refuses", held(A), FILE, { holder: B, now: MIN }, "!locked"],
  [
    "another device's expired lock is taken over",
    held(A, MIN),
    FILE,
    { holder: B, now: MIN },
    "new B 60000..1860000",
  ],
  [
    "an expired own lock starts anew",
    held(A, MIN),
    FILE,
    { holder: A, now: 2 * MIN },
    "new A 120000..1920000",
  ],
  [
    "a renewal renews the holder's live lock",
    held(A),
    FILE,
    { holder: A, renew: true, now: MIN },
    "renewed A 0..1860000",
  ],
  [
    "a renewal of an expired lock is not_locked",
    held(A, MIN),
    FILE,
    { holder: A, renew: true, now: MIN },
    "!not_locked",
  ],
  [
    "a renewal of a lock forced open is not_locked",
    null,
    FILE,
    { holder: A, renew: true, now: 0 },
    "!not_locked",
  ],
  ["a renewal of another's lock is locked", held(B), FILE, { holder: A, renew: true, now: 0 }, "!locked"],
  ["a folder is not_a_file", null, DIR, { holder: A, now: 0 }, "!not_a_file"],
  ["a missing file is not_found", null, null, { holder: A, now: 0 }, "!not_found"],
  ["a held lock is reported before a missing file", held(A), null, { holder: B, now: 0 }, "!locked"],
];

for (const [name, current, entry, request, expect] of LOCK_CASES) {
  Deno.test(`decideLock(): ${name}`, () => {
    const decided = decideLock(current, entry, { path: "f", ...request });
    const got = decided.ok
      ? `${
        decided.renewed ? "renewed" : "new"
      } ${decided.lock.deviceId} ${decided.lock.taken}..${decided.lock.expires}`
      : `!${decided.code}`;
    assert.equal(got, expect);
  });
}

Deno.test("decideLock() names the holder in its refusal", () => {
  const decided = decideLock(held(A), FILE, { path: "f", holder: B, now: 0 });
  assert.ok(!decided.ok);
  assert.equal(decided.error, `"f" is already locked by u on device "dev-a"`);
  assert.deepEqual(decided.lock, held(A));
});

const UNLOCK_CASES: [
  name: string,
  current: LockRecord | null,
  request: { holder: typeof A; force: boolean; owner: boolean; now: number },
  expect: string,
][] = [
  ["the holder releases its lock", held(A), { holder: A, force: false, owner: true, now: 0 }, "released A"],
  ["another device is refused", held(A), { holder: B, force: false, owner: true, now: 0 }, "!not_holder"],
  ["the owner forces it open", held(A), { holder: B, force: true, owner: true, now: 0 }, "released A"],
  ["force without owning refuses", held(A), { holder: B, force: true, owner: false, now: 0 }, "!not_holder"],
  ["nothing locked is not_locked", null, { holder: A, force: false, owner: true, now: 0 }, "!not_locked"],
  [
    "an expired lock is not_locked",
    held(A, 10),
    { holder: A, force: true, owner: true, now: 10 },
    "!not_locked",
  ],
];

for (const [name, current, request, expect] of UNLOCK_CASES) {
  Deno.test(`decideUnlock(): ${name}`, () => {
    const decided = decideUnlock(current, { path: "f", ...request });
    assert.equal(decided.ok ? `released ${decided.released.deviceId}` : `!${decided.code}`, expect);
  });
}

Deno.test("decideUnlock() suggests --force to the owner, and says who holds it", () => {
  const decided = decideUnlock(held(A), { path: "f", holder: B, force: false, owner: true, now: 0 });
  assert.ok(!decided.ok);
  assert.equal(
    decided.error,
    `"f" is locked by u on device "dev-a", not by this device: use --force to release it anyway`,
  );
});

const BLOCK_CASES: [
  name: string,
  lockPath: string,
  paths: string[],
  below: boolean,
  who: typeof A,
  now: number,
  blocks: boolean,
][] = [
  ["the same path", "d/f", ["d/f"], true, B, 0, true],
  ["a file below a folder", "d/f", ["d"], true, B, 0, true],
  ["a file below a folder, exact only", "d/f", ["d"], false, B, 0, false],
  ["a name that only starts the same", "d/f", ["d/"], true, B, 0, false],
  ["a sibling with a longer name", "dx/f", ["d"], true, B, 0, false],
  ["the holder itself", "d/f", ["d/f"], true, A, 0, false],
  ["at the moment it expires", "d/f", ["d/f"], true, B, 30 * MIN, false],
  ["a moment before it expires", "d/f", ["d/f"], true, B, 30 * MIN - 1, true],
];

for (const [name, lockPath, paths, below, who, now, blocks] of BLOCK_CASES) {
  Deno.test(`blockingLock(): ${name}`, () => {
    const lock = { ...held(A), path: lockPath };
    assert.equal(blockingLock([lock], { paths, holder: who, now, below }) !== null, blocks);
  });
}

Deno.test("isLive() and wireLocks(): expired locks drop out, the viewer's own are marked", () => {
  const mineLock = { ...held(A), path: "b" };
  const theirs = { ...held(B, 100), path: "a" };
  assert.equal(isLive(theirs, 99), true);
  assert.equal(isLive(theirs, 100), false);
  assert.deepEqual(wireLocks([mineLock, theirs], A, 40).map((l) => [l.path, l.mine, l.remainingMs]), [
    ["a", false, 60],
    ["b", true, 30 * MIN - 40],
  ]);
  assert.deepEqual(wireLocks([mineLock, theirs], A, 100).map((l) => l.path), ["b"]);
});

Deno.test("ownsNamespace(): today a namespace is its user's own", () => {
  assert.equal(ownsNamespace("u", "u"), true);
  assert.equal(ownsNamespace("v", "u"), false);
});
