// The cluster bus contract: one suite every ClusterBus implementation passes (in-process, PostgreSQL).
import assert from "node:assert/strict";
import { type ClusterBus, type ClusterNote, MAX_NOTE_BYTES } from "./cluster_bus.ts";
import { MAX_PATH_BYTES } from "../protocol/paths.ts";

/** Two nodes on one bus, and how to let them go. */
export interface BusPair extends AsyncDisposable {
  a: ClusterBus;
  b: ClusterBus;
}

/** Polls until `check` holds; throws `message` after `timeoutMs`. */
export async function until(check: () => boolean, message: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out: ${message}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Registers the contract tests of a bus; `pair` makes two fresh nodes on it. */
export function busContract(name: string, pair: () => Promise<BusPair>): void {
  Deno.test(`${name}: one node's notes reach the other in order, never itself`, async () => {
    await using nodes = await pair();
    const heardA: ClusterNote[] = [];
    const heardB: ClusterNote[] = [];
    nodes.a.listen((n) => heardA.push(n));
    nodes.b.listen((n) => heardB.push(n));
    for (let seq = 1; seq <= 30; seq++) void nodes.a.send({ kind: "journal", ns: "alice", seq });
    await nodes.a.send({ kind: "revoked", user: "alice", deviceId: "d1" });
    await until(() => heardB.length === 31, `b heard ${heardB.length} of 31 notes`);
    assert.deepEqual(
      heardB.slice(0, 30).map((n) => n.kind === "journal" && n.seq),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    assert.deepEqual(heardB[30], { kind: "revoked", user: "alice", deviceId: "d1" });
    // b's own note reaches a: a heard nothing of its own before it.
    await nodes.b.send({ kind: "logout", user: "bob" });
    await until(() => heardA.length === 1, "a heard b's note");
    assert.deepEqual(heardA, [{ kind: "logout", user: "bob" }]);
  });

  Deno.test(`${name}: a removed listener hears nothing`, async () => {
    await using nodes = await pair();
    const removed: ClusterNote[] = [];
    const kept: ClusterNote[] = [];
    const remove = nodes.b.listen((n) => removed.push(n));
    nodes.b.listen((n) => kept.push(n));
    remove();
    await nodes.a.send({ kind: "journal", ns: "alice", seq: 7 });
    await until(() => kept.length === 1, "the kept listener heard the note");
    assert.deepEqual(removed, []);
  });

  Deno.test(`${name}: notes up to the size bound pass, a larger one is refused`, async () => {
    await using nodes = await pair();
    const heard: ClusterNote[] = [];
    nodes.b.listen((n) => heard.push(n));
    // The longest path (in 3-byte characters) in a share change and in a lock change fits.
    const path = "€".repeat(MAX_PATH_BYTES / 3);
    const share: ClusterNote = {
      kind: "share",
      change: {
        change: "new",
        share: {
          ns: "alice:" + "x".repeat(64),
          path,
          owner: "a".repeat(64),
          user: "b".repeat(64),
          access: "read",
          mount: "m".repeat(255),
        },
      },
    };
    const lock: ClusterNote = {
      kind: "locks",
      ns: "alice",
      change: { path, what: "taken", by: "d".repeat(255) },
    };
    await nodes.a.send(share);
    await nodes.a.send(lock);
    await until(() => heard.length === 2, "both long notes arrived");
    assert.deepEqual(heard, [share, lock]);
    const tooLong: ClusterNote = { kind: "logout", user: "u".repeat(MAX_NOTE_BYTES) };
    await assert.rejects(nodes.a.send(tooLong), RangeError);
    // The bus still works after a refusal.
    await nodes.a.send({ kind: "journal", ns: "alice", seq: 1 });
    await until(() => heard.length === 3, "the note after the refused one arrived");
  });
}
