// Tests for what `filesync server status` shows: the readable lines, and the chunk store size cache.
import assert from "node:assert/strict";
import type { ChunkStore, ChunkUsage } from "./chunk_store.ts";
import {
  CHUNK_USAGE_MAX_AGE_MS,
  ChunkUsageCache,
  describeStatus,
  type ServerStatus,
} from "./server_stats.ts";

const T0 = Date.UTC(2026, 11, 1, 20, 0, 0);

function status(over: Partial<ServerStatus> = {}): ServerStatus {
  return {
    startedAt: T0,
    now: T0 + 3 * 3600_000 + 5 * 60_000,
    connections: 2,
    sessions: 7,
    commits: 12,
    uploadedBytes: 3 * 1024 * 1024,
    downloadedBytes: 512,
    devices: [
      { user: "bob", device: "phone", deviceId: "b1", address: "10.0.0.2:4000", since: T0 + 60_000 },
      { user: "alice", device: "laptop", deviceId: "a1", address: "127.0.0.1:5000", since: T0 + 1000 },
      { user: "alice", device: "desktop", deviceId: "a2", address: "[::1]:5001", since: T0 + 2000 },
    ],
    chunkStore: { chunks: 1, bytes: 2048, measuredAt: T0 + 3 * 3600_000 },
    traffic: {},
    ...over,
  };
}

Deno.test("describeStatus() lists uptime, counters, the chunk store and the devices per user", () => {
  assert.deepEqual(describeStatus(status()), [
    "server up 3 h 5 min (since 2026-12-01 20:00:00 UTC)",
    "2 connections open, 7 since start",
    "since start: 12 changes committed, 3.0 MiB uploaded, 512 B downloaded",
    "chunk store: 1 chunk, 2.0 KiB (measured 2026-12-01 23:00:00 UTC)",
    "alice: 2 devices connected",
    "  laptop (a1) from 127.0.0.1:5000, connected since 2026-12-01 20:00:01 UTC",
    "  desktop (a2) from [::1]:5001, connected since 2026-12-01 20:00:02 UTC",
    "bob: 1 device connected",
    "  phone (b1) from 10.0.0.2:4000, connected since 2026-12-01 20:01:00 UTC",
  ]);
});

Deno.test("describeStatus() says when no device is connected and the chunk store size is unknown", () => {
  const lines = describeStatus(
    status({ devices: [], chunkStore: undefined, connections: 1, commits: 1, now: T0 + 12_000 }),
  );
  assert.deepEqual(lines, [
    "server up 12 s (since 2026-12-01 20:00:00 UTC)",
    "1 connection open, 7 since start",
    "since start: 1 change committed, 3.0 MiB uploaded, 512 B downloaded",
    "chunk store: size unknown",
    "no devices connected",
  ]);
  assert.equal(
    describeStatus(status({ now: T0 + 2 * 86400_000 + 3600_000 }))[0].split(" (")[0],
    "server up 2 d 1 h",
  );
});

/** A store whose usage() counts its calls and resolves when told. */
function countingStore(): { store: ChunkStore; calls: () => number; finish: (u: ChunkUsage) => void } {
  let calls = 0;
  let finish: (u: ChunkUsage) => void = () => {};
  const store = {
    usage: () => {
      calls++;
      return new Promise<ChunkUsage>((resolve) => finish = resolve);
    },
  } as unknown as ChunkStore;
  return { store, calls: () => calls, finish: (u) => finish(u) };
}

Deno.test("ChunkUsageCache measures once for callers at the same time, reuses it a minute, then measures again", async () => {
  let now = T0;
  const { store, calls, finish } = countingStore();
  const cache = new ChunkUsageCache(store, () => now);
  const [a, b] = [cache.get(), cache.get()];
  finish({ chunks: 3, bytes: 300 });
  assert.deepEqual(await a, { chunks: 3, bytes: 300, measuredAt: T0 });
  assert.deepEqual(await b, await a);
  assert.equal(calls(), 1);
  now += CHUNK_USAGE_MAX_AGE_MS - 1;
  assert.deepEqual(await cache.get(), { chunks: 3, bytes: 300, measuredAt: T0 });
  assert.equal(calls(), 1);
  now += 1;
  const c = cache.get();
  finish({ chunks: 4, bytes: 400 });
  assert.deepEqual(await c, { chunks: 4, bytes: 400, measuredAt: now });
  assert.equal(calls(), 2);
});

Deno.test("ChunkUsageCache gives null for a store that cannot tell its size", async () => {
  assert.equal(await new ChunkUsageCache({} as ChunkStore).get(), null);
});
