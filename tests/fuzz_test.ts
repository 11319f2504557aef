// CI fuzz run (5,000 cases in memory plus some over real TLS, seed printed) and regressions the fuzz found.
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROTOCOL_VERSION, Requests } from "../protocol/messages.ts";
import { Pushes, Replies } from "../protocol/replies.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { issueToken, LoginGuard } from "../server/auth.ts";
import { DiskChunkStore } from "../server/chunk_store.ts";
import { Hub } from "../server/hub.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import { runAdmin } from "../server/server.ts";
import { Session } from "../server/session.ts";
import { PUSHES, runFuzz, validReplies, validRequests } from "./fuzz.ts";
import { TempDir } from "./harness.ts";

Deno.test("the fuzz corpus has a valid request, reply and push for every op and push the protocol knows", () => {
  const requested = new Set(validRequests("t".repeat(43)).map((r) => r.message.op));
  assert.deepEqual(Object.keys(Requests).filter((op) => !requested.has(op)), []);
  assert.deepEqual(Object.keys(Replies).filter((op) => !(op in validReplies(1))), []);
  const pushed = new Set(PUSHES(1).map((p) => p.push));
  assert.deepEqual(Object.keys(Pushes).filter((push) => !pushed.has(push)), []);
});

Deno.test("a COMMIT nested 100,000 deep is refused as a bad frame before parsing, and the server serves on", async () => {
  await using tmp = new TempDir();
  const store = await KvMetadataStore.open(join(tmp.path, "metadata.kv"));
  try {
    const ctx = {
      store,
      chunks: new DiskChunkStore(tmp.join("chunks")),
      hub: new Hub(),
      logins: new LoginGuard(),
      log: () => {},
    };
    await runAdmin(store, { op: "user-add", name: "fuzz", password: "fuzz password 123" });
    const { token } = await issueToken(store, "fuzz", "dev");
    const [c, s] = memoryPipe();
    const session = new Session(s, "test", ctx);
    const peer = new RpcPeer(c);
    await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "t" });
    await peer.request("AUTH", { token });
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    // The frame decoder refuses JSON nested over 32 levels (an error frame, then the connection closes).
    await assert.rejects(
      peer.request("COMMIT", { changes: [{ op: deep, path: "a", baseRev: 0 }] }),
      (e: RpcError) => e instanceof RpcError,
    );
    await Promise.all([peer.closed, session.peer.closed]);
    const [c2, s2] = memoryPipe();
    const next = new Session(s2, "test", ctx);
    const peer2 = new RpcPeer(c2);
    await peer2.request("HELLO", { version: PROTOCOL_VERSION, agent: "t" });
    await peer2.request("AUTH", { token });
    await peer2.request("PING");
    peer2.close();
    await Promise.all([peer2.closed, next.peer.closed]);
  } finally {
    store.close();
  }
});

Deno.test("fuzz: frames, RPC and every schema both ways, 5,000 cases in memory and 200 over TLS", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`fuzz seed ${seed} (rerun with FUZZ_SEED=${seed})`);
  const result = await runFuzz({ cases: 5000, tlsCases: 200, seed });
  console.log(
    `fuzz: ${result.cases} cases in ${(result.ms / 1000).toFixed(1)} s, heap growth ` +
      `${Math.round(result.heapGrowthBytes / 1e6)} MB`,
  );
  assert.deepEqual(result.failures, [], `seed ${seed}`);
  assert.equal(result.cases, 5200);
});
