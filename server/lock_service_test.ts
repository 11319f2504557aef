// The lock service on a real KV store with an injected clock: leases, renewals, forcing, expiry sweeps, pushes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Batch, chunk, NS } from "./metadata_contract.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import { type LockEvent, LockService } from "./lock_service.ts";

const A = { user: NS, deviceId: "A", device: "dev-a" };
const B = { user: NS, deviceId: "B", device: "dev-b" };
const MIN = 60_000;

async function withService(
  fn: (service: LockService, clock: { now: number }, events: LockEvent[]) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "filesync-locks-" });
  const clock = { now: 1_000_000 };
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"), { now: () => clock.now });
  try {
    await new Batch().upload("f", [chunk("f")]).upload("g", [chunk("g")]).mkdir("d").commit(store);
    const service = new LockService(store, { now: () => clock.now });
    const events: LockEvent[] = [];
    const stop = service.subscribe(NS, (event) => events.push(event));
    await fn(service, clock, events);
    stop();
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("LockService: a lease lasts 30 minutes by default, the holder renews it, and it then expires", async () => {
  await withService(async (service, clock, events) => {
    const taken = await service.lock(NS, { path: "f", holder: A });
    assert.ok(taken.ok && !taken.renewed);
    assert.equal(taken.lock.expires, clock.now + 30 * MIN);
    clock.now += 20 * MIN;
    const renewed = await service.lock(NS, { path: "f", holder: A });
    assert.ok(renewed.ok && renewed.renewed);
    assert.equal(renewed.lock.expires, clock.now + 30 * MIN, "renewed from now for the lease's length");
    clock.now += 29 * MIN;
    assert.equal(await service.sweep(), 0, "still live after the first lease would have ended");
    assert.equal((await service.live(NS)).length, 1);
    clock.now += MIN;
    assert.equal(await service.sweep(), 1);
    assert.deepEqual(await service.live(NS), []);
    assert.deepEqual(events.map((e) => [e.change.what, e.locks.length]), [
      ["taken", 1],
      ["renewed", 1],
      ["expired", 0],
    ]);
  });
});

Deno.test("LockService: another device is refused, the owner forces it open, a folder cannot be locked", async () => {
  await withService(async (service, _clock, events) => {
    assert.ok((await service.lock(NS, { path: "f", holder: A, minutes: 5 })).ok);
    const other = await service.lock(NS, { path: "f", holder: B });
    assert.ok(!other.ok && other.code === "locked");
    assert.match(other.error, /already locked by alice on device "dev-a"/);
    const plain = await service.unlock(NS, { path: "f", holder: B, force: false });
    assert.ok(!plain.ok && plain.code === "not_holder");
    assert.match(plain.error, /--force/);
    const forced = await service.unlock(NS, { path: "f", holder: B, force: true });
    assert.ok(forced.ok && forced.released.deviceId === "A");
    const again = await service.unlock(NS, { path: "f", holder: A, force: false });
    assert.ok(!again.ok && again.code === "not_locked");
    const folder = await service.lock(NS, { path: "d", holder: A });
    assert.ok(!folder.ok && folder.code === "not_a_file");
    const missing = await service.lock(NS, { path: "nope", holder: A });
    assert.ok(!missing.ok && missing.code === "not_found");
    assert.deepEqual(events.map((e) => [e.change.what, e.change.by]), [["taken", "dev-a"], [
      "forced",
      "dev-b",
    ]]);
  });
});

Deno.test("LockService: a revoked device's locks are released and pushed; other devices' locks stay", async () => {
  await withService(async (service, _clock, events) => {
    assert.ok((await service.lock(NS, { path: "f", holder: A })).ok);
    assert.ok((await service.lock(NS, { path: "g", holder: B })).ok);
    assert.equal(await service.releaseDevice(NS, "A"), 1);
    assert.deepEqual((await service.live(NS)).map((l) => [l.path, l.deviceId]), [["g", "B"]]);
    assert.equal(await service.releaseDevice(NS, "A"), 0, "nothing left to release");
    assert.deepEqual(events.at(-1)?.change, { path: "f", what: "released", by: "dev-a" });
  });
});
