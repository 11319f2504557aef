// A session's device ops over an in-memory pipe with a real KV file: DEVICES, AUTH of a revoked token, and a
// revocation that races an AUTH.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEVICE_REVOKED, PROTOCOL_VERSION, type WireDevice } from "../protocol/messages.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { issueToken, LoginGuard, makeUser } from "./auth.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { Hub } from "./hub.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { MetadataStore } from "./metadata_store.ts";
import { Session } from "./session.ts";

/** Runs `fn` with a store holding alice and bob in a temp folder, and a way to open sessions on it. */
async function withSessions(
  fn: (
    store: KvMetadataStore,
    connect: (over?: MetadataStore) => { peer: RpcPeer; session: Session; pushes: Record<string, unknown>[] },
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-session-devices-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  const chunks = new DiskChunkStore(join(dir, "chunks"));
  await chunks.open();
  const open: { peer: RpcPeer; session: Session }[] = [];
  try {
    for (const name of ["alice", "bob"]) await store.addUser(await makeUser(name, "pw"));
    await fn(store, (over = store) => {
      const [serverSide, clientSide] = memoryPipe();
      const session = new Session(serverSide, "memory", {
        store: over,
        chunks,
        hub: new Hub(),
        logins: new LoginGuard(),
        log: () => {},
      });
      const pushes: Record<string, unknown>[] = [];
      const peer = new RpcPeer(clientSide, { onPush: (frame) => pushes.push(frame.message) });
      open.push({ peer, session });
      return { peer, session, pushes };
    });
  } finally {
    for (const { peer } of open) peer.close();
    await Promise.all(open.flatMap(({ peer, session }) => [peer.closed, session.peer.closed]));
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function hello(peer: RpcPeer): Promise<void> {
  await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
}

/** The code and reason of a refused request. */
async function refusal(promise: Promise<unknown>): Promise<[string, unknown]> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, String(error));
    return [error.code, error.detail.reason];
  }
  throw new Error("the request was not refused");
}

Deno.test("DEVICES lists the caller's user's devices only, the caller marked current; only after login", async () => {
  await withSessions(async (store, connect) => {
    const laptop = await issueToken(store, "alice", "laptop");
    const phone = await issueToken(store, "alice", "phone");
    await issueToken(store, "bob", "desk");
    const { peer } = connect();
    await hello(peer);
    assert.deepEqual(await refusal(peer.request("DEVICES", {})), ["auth", undefined]);
    await peer.request("AUTH", { token: phone.token });
    const devices = (await peer.request("DEVICES", {})).message.devices as WireDevice[];
    assert.deepEqual(devices.map((d) => [d.device, d.deviceId, d.current ?? false]).sort(), [
      ["laptop", laptop.record.deviceId, false],
      ["phone", phone.record.deviceId, true],
    ]);
    assert.ok(devices.find((d) => d.current)!.lastSeen! > 0, "the AUTH marked the device seen");
  });
});

Deno.test("AUTH with a revoked device's token is refused as revoked; the user's other device still works", async () => {
  await withSessions(async (store, connect) => {
    const laptop = await issueToken(store, "alice", "laptop");
    const phone = await issueToken(store, "alice", "phone");
    await store.revokeDevice("alice", laptop.record.deviceId, Date.now());
    const a = connect();
    await hello(a.peer);
    assert.deepEqual(await refusal(a.peer.request("AUTH", { token: laptop.token })), [
      "auth_token",
      DEVICE_REVOKED,
    ]);
    const b = connect();
    await hello(b.peer);
    await b.peer.request("AUTH", { token: phone.token });
    await b.peer.request("PING", {});
  });
});

Deno.test("Session.revoke() tells the device with reason revoked and closes the connection", async () => {
  await withSessions(async (store, connect) => {
    const laptop = await issueToken(store, "alice", "laptop");
    const { peer, session, pushes } = connect();
    await hello(peer);
    await peer.request("AUTH", { token: laptop.token });
    assert.equal(session.deviceId, laptop.record.deviceId);
    session.revoke();
    const reason = await peer.closed;
    assert.ok(reason instanceof RpcError);
    assert.deepEqual(pushes.map((p) => [p.push, p.code, p.reason]), [[
      "error",
      "auth_token",
      DEVICE_REVOKED,
    ]]);
  });
});

Deno.test("a revocation that lands during an AUTH (after its check) still closes that session", async () => {
  await withSessions(async (store, connect) => {
    const laptop = await issueToken(store, "alice", "laptop");
    // The revocation runs right after checkToken has found the token valid, before the session has its device
    // id: the server's look for the device's sessions would miss it.
    const racing = new Proxy(store, {
      get(target, prop) {
        if (prop === "markSeen") {
          return async (hash: string, at: number) => {
            await target.revokeDevice("alice", laptop.record.deviceId, at);
            await target.markSeen(hash, at);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const { peer, pushes } = connect(racing);
    await hello(peer);
    // The session is closed before the AUTH's answer: the device learns why from the push that precedes it.
    const [code] = await refusal(peer.request("AUTH", { token: laptop.token }));
    assert.ok(code === "closed" || code === "auth_token", code);
    await peer.closed;
    assert.deepEqual(pushes.map((p) => [p.code, p.reason]), [["auth_token", DEVICE_REVOKED]]);
  });
});
