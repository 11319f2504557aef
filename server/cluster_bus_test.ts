// The cluster bus contract on the in-process bus always, and on PostgreSQL when FILESYNC_TEST_POSTGRES is set.
import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase, TEST_POSTGRES } from "./pg_test_db.ts";
import { decodeNote, encodeNote, InProcessNetwork, singleNodeBus } from "./cluster_bus.ts";
import { PgClusterBus } from "./cluster_bus_pg.ts";
import { busContract, until } from "./cluster_bus_contract.ts";

busContract("InProcessBus", () => {
  const network = new InProcessNetwork();
  const a = network.node();
  const b = network.node();
  return Promise.resolve({
    a,
    b,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
    },
  });
});

Deno.test("singleNodeBus: a node alone does not read other nodes' journals and sends to nobody", async () => {
  const bus = singleNodeBus();
  assert.equal(bus.shared, false);
  await bus.send({ kind: "journal", ns: "alice", seq: 1 });
  await bus.close();
});

Deno.test("decodeNote: anything but a well-formed note is ignored", () => {
  assert.deepEqual(decodeNote(encodeNote("n1", { kind: "journal", ns: "a", seq: 3 })), {
    from: "n1",
    note: { kind: "journal", ns: "a", seq: 3 },
  });
  for (
    const text of [
      "",
      "null",
      "[]",
      `{"kind":"journal","ns":"a","seq":3}`,
      `{"from":"n","kind":"journal","ns":"a","seq":"3"}`,
      `{"from":"n","kind":"revoked","user":"a"}`,
      `{"from":"n","kind":"share","change":null}`,
      `{"from":"n","kind":"ping"}`,
    ]
  ) assert.equal(decodeNote(text), null, text);
});

if (TEST_POSTGRES) {
  busContract("PgClusterBus", async () => {
    const db = await freshDatabase();
    const sqlA = postgres(db.url, { onnotice: () => {} });
    const sqlB = postgres(db.url, { onnotice: () => {} });
    const a = new PgClusterBus(sqlA);
    const b = new PgClusterBus(sqlB);
    await Promise.all([a.ready(), b.ready()]);
    return {
      a,
      b,
      async [Symbol.asyncDispose]() {
        await a.close();
        await b.close();
        await sqlA.end({ timeout: 1 });
        await sqlB.end({ timeout: 1 });
        await db[Symbol.asyncDispose]();
      },
    };
  });

  Deno.test("PgClusterBus: after its LISTEN connection is killed it resumes (catch-up) and hears again", async () => {
    await using db = await freshDatabase();
    const sqlA = postgres(db.url, { onnotice: () => {} });
    const sqlB = postgres(db.url, { onnotice: () => {}, connection: { application_name: "bus_b" } });
    const a = new PgClusterBus(sqlA);
    const b = new PgClusterBus(sqlB, { pingMs: 200 });
    try {
      await Promise.all([a.ready(), b.ready()]);
      let resumed = 0;
      b.onResume(() => resumed++);
      const heard: number[] = [];
      b.listen((n) => n.kind === "journal" && heard.push(n.seq));
      await a.send({ kind: "journal", ns: "alice", seq: 1 });
      await until(() => heard.length === 1, "b heard the first note");
      // Every connection of b's client, the listening one with them, is cut by the server.
      await sqlA`select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'bus_b' and pid <> pg_backend_pid()`;
      await until(() => resumed > 0, "b resumed after losing its connection", 10_000);
      await a.send({ kind: "journal", ns: "alice", seq: 2 });
      await until(() => heard.includes(2), "b hears after the reconnect", 10_000);
    } finally {
      await a.close();
      await b.close();
      await sqlA.end({ timeout: 1 });
      await sqlB.end({ timeout: 1 });
    }
  });
}
