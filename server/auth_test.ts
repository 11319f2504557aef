// Tests for passwords, user names, login limits, check queue and attack log (injected clocks) and device tokens.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AttackLog,
  BusyError,
  checkPassword,
  CheckQueue,
  checkToken,
  issueToken,
  LoginGuard,
  type LoginOutcome,
  type LoginPolicy,
  makeUser,
  TOKEN_LIFETIME_MS,
  tokenHash,
  tokenState,
  validateUserName,
} from "./auth.ts";
import { KvMetadataStore } from "./metadata_kv.ts";

const HOUR = 3600_000;

/** Runs `fn` with a store on a fresh KV file, closed and removed afterwards. */
async function withStore(fn: (store: KvMetadataStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-auth-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  try {
    await fn(store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("checkPassword accepts the right password and refuses wrong ones", async () => {
  const user = await makeUser("alice", "correct horse", 1234);
  assert.equal(user.name, "alice");
  assert.equal(user.created, 1234);
  assert.doesNotMatch(JSON.stringify(user), /correct horse/, "the password itself is not stored");
  assert.equal(await checkPassword(user, "correct horse"), true);
  assert.equal(await checkPassword(user, "correct horse "), false);
  assert.equal(await checkPassword(user, "Correct horse"), false);
  assert.equal(await checkPassword(user, ""), false);
});

Deno.test("the same password gets a different salt and hash for each user", async () => {
  const a = await makeUser("a", "same");
  const b = await makeUser("b", "same");
  assert.notEqual(a.salt, b.salt);
  assert.notEqual(a.hash, b.hash);
  assert.equal(Buffer.from(a.salt, "base64").length, 16);
  assert.equal(Buffer.from(a.hash, "base64").length, 32);
});

Deno.test("a Unicode password matches whether typed in NFC or NFD form", async () => {
  const nfc = "Crème brûlée ñ 한국어".normalize("NFC");
  const nfd = nfc.normalize("NFD");
  assert.notEqual(nfc, nfd);
  const user = await makeUser("u", nfd);
  assert.equal(await checkPassword(user, nfc), true);
  assert.equal(await checkPassword(user, nfd), true);
  assert.equal(await checkPassword(user, "Creme brulee n 한국어"), false, "accents still matter");
});

Deno.test("checkPassword is false for a damaged stored hash", async () => {
  const user = await makeUser("u", "pw");
  assert.equal(await checkPassword({ ...user, hash: user.hash.slice(0, 8) }, "pw"), false);
});

Deno.test("validateUserName accepts letters, digits, dot, dash and underscore, up to 64", () => {
  for (const name of ["alice", "a", "A_b.c-d", "0day", "_x", "x".repeat(64)]) {
    assert.equal(validateUserName(name), name);
  }
});

Deno.test("validateUserName throws a TypeError for anything else", () => {
  const bad = ["", ".hidden", "-dash", "x".repeat(65), "a b", "ünï", "a/b", "../x", "a\u0000", "a:b", "a@b"];
  for (const name of bad) {
    assert.throws(() => validateUserName(name), (error: unknown) => {
      assert.ok(error instanceof TypeError, `for ${JSON.stringify(name)}`);
      assert.match(error.message, /^Invalid user name/);
      return true;
    });
  }
});

/** A guard on a clock the test moves. */
function guardAt(policy: LoginPolicy = {}) {
  const clock = { now: 1_000_000 };
  const guard = new LoginGuard({ now: () => clock.now, ...policy });
  /** Begins and ends one attempt; returns "ok", or the refusal reason and wait. */
  const attempt = (user: string, address: string, outcome: "success" | "failure" = "failure") => {
    const d = guard.begin(user, address);
    if (!d.ok) return `${d.reason} ${d.waitMs}`;
    guard.end(d.ticket, outcome);
    return "ok";
  };
  return { clock, guard, attempt };
}

Deno.test("LoginGuard counts an attempt before it ends, so parallel attempts cannot pass the limit", () => {
  const { guard } = guardAt();
  const decisions = Array.from({ length: 300 }, () => guard.begin("alice", "192.0.2.9"));
  assert.equal(decisions.filter((d) => d.ok).length, 5, "only the free attempts may be checked");
  assert.deepEqual(decisions[5], { ok: false, waitMs: 1000, reason: "source" });
});

Deno.test("LoginGuard: the delay doubles per failure up to the cap and only the failing address waits", () => {
  const { clock, attempt } = guardAt({ maxDelayMs: 4000, userBurst: 100 });
  for (let i = 0; i < 5; i++) assert.equal(attempt("alice", "a1"), "ok");
  const waits: string[] = [];
  for (let i = 0; i < 4; i++) {
    waits.push(attempt("alice", "a1"));
    clock.now += 10_000;
    assert.equal(attempt("alice", "a1"), "ok");
  }
  assert.deepEqual(waits, ["source 1000", "source 2000", "source 4000", "source 4000"]);
  assert.equal(attempt("alice", "a2", "success"), "ok", "the owner elsewhere is not locked out");
});

Deno.test("LoginGuard: a success forgets the address's failures and trusts it for the user", () => {
  const { attempt } = guardAt({ userBurst: 2, userRefillMs: 60_000 });
  assert.equal(attempt("alice", "home"), "ok");
  assert.equal(attempt("alice", "home", "success"), "ok");
  // The failure used one of the two attempts for new addresses (the success gave its own back)…
  assert.equal(attempt("alice", "x1"), "ok");
  assert.match(attempt("alice", "x2"), /^user /);
  // …but the trusted address is not subject to it.
  for (let i = 0; i < 4; i++) assert.equal(attempt("alice", "home"), "ok");
  assert.equal(attempt("alice", "home", "success"), "ok");
});

Deno.test("LoginGuard: attempts from many addresses for one user are held to the slow per-user rate", () => {
  const { clock, attempt } = guardAt({ userBurst: 10, userRefillMs: 6000 });
  const results = Array.from({ length: 50 }, (_, i) => attempt("alice", `10.0.0.${i}`));
  assert.equal(results.filter((r) => r === "ok").length, 10);
  assert.equal(results[10], "user 6000");
  clock.now += 6000;
  assert.equal(attempt("alice", "10.0.1.1"), "ok", "one more after the refill interval");
  assert.equal(attempt("bob", "10.0.1.1"), "ok", "other users are not affected");
});

Deno.test("LoginGuard: one address trying many user names is held too", () => {
  const { attempt } = guardAt();
  for (let i = 0; i < 10; i++) assert.equal(attempt(`user${i}`, "a1"), "ok");
  assert.equal(attempt("bob", "a1"), "address 1000");
  assert.equal(attempt("bob", "a2"), "ok");
});

Deno.test("LoginGuard: a cancelled attempt is not counted, and failures expire after the window", () => {
  const { clock, guard, attempt } = guardAt({ windowMs: 60_000 });
  for (let i = 0; i < 20; i++) {
    const d = guard.begin("alice", "a1");
    assert.ok(d.ok);
    guard.end(d.ticket, "cancelled");
  }
  for (let i = 0; i < 5; i++) assert.equal(attempt("alice", "a1"), "ok");
  assert.match(attempt("alice", "a1"), /^source /);
  clock.now += 60_001;
  assert.equal(attempt("alice", "a1"), "ok");
});

Deno.test("CheckQueue runs at most `concurrency` tasks, queues a few, refuses the rest at once", async () => {
  const queue = new CheckQueue({ concurrency: 2, maxWaiting: 3 });
  const gates: (() => void)[] = [];
  let running = 0;
  let most = 0;
  const task = () =>
    new Promise<number>((resolve) => {
      most = Math.max(most, ++running);
      gates.push(() => {
        running--;
        resolve(1);
      });
    });
  const runs = Array.from({ length: 8 }, () => queue.run(task).catch((e) => e));
  await Promise.resolve();
  assert.equal(queue.running, 2);
  assert.equal(queue.waiting, 3);
  const refused = await Promise.all(runs.slice(5));
  assert.ok(refused.every((e) => e instanceof BusyError));
  while (gates.length > 0 || queue.running > 0) {
    gates.shift()?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.deepEqual(await Promise.all(runs.slice(0, 5)), [1, 1, 1, 1, 1]);
  assert.equal(most, 2);
  assert.equal(queue.running, 0);
});

Deno.test("AttackLog logs the first event, then one summary per interval", () => {
  let now = 0;
  const lines: string[] = [];
  const log = new AttackLog((l) => lines.push(l), { intervalMs: 60_000, now: () => now });
  for (let i = 0; i < 100; i++) {
    log.note("k", `refused ${i}`);
    now += 100;
  }
  log.note("other", "other event");
  assert.deepEqual(lines, ["refused 0", "other event"]);
  now = 60_000;
  log.flush();
  assert.deepEqual(lines.slice(2), ["refused 99 (99 more like it in the last 60 s)"]);
  log.note("k", "again");
  assert.equal(lines[lines.length - 1], "again");
});

Deno.test("an issued token is valid until it expires, and is stored only as its hash", async () => {
  await withStore(async (store) => {
    await store.addUser(await makeUser("alice", "pw"));
    const t0 = 1_700_000_000_000;
    const { token, record } = await issueToken(store, "alice", "laptop", t0);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(
      { user: record.user, device: record.device, created: record.created, expires: record.expires },
      { user: "alice", device: "laptop", created: t0, expires: t0 + TOKEN_LIFETIME_MS },
    );
    assert.equal(await store.getToken(token), null, "not stored in the clear");
    assert.deepEqual(await store.getToken(tokenHash(token)), record);
    const ok = await checkToken(store, token, t0 + HOUR / 2);
    assert.ok(ok.ok);
    assert.equal(ok.record.deviceId, record.deviceId);
    assert.deepEqual(await checkToken(store, token, t0 + TOKEN_LIFETIME_MS), {
      ok: false,
      reason: "expired",
    });
    assert.deepEqual(await checkToken(store, "not-a-token", t0), { ok: false, reason: "unknown" });
  });
});

Deno.test("a used token's expiry slides forward, at most once an hour", async () => {
  await withStore(async (store) => {
    await store.addUser(await makeUser("alice", "pw"));
    const t0 = 1_700_000_000_000;
    const { token } = await issueToken(store, "alice", "laptop", t0);
    await checkToken(store, token, t0 + HOUR / 2);
    assert.equal(
      (await store.getToken(tokenHash(token)))?.expires,
      t0 + TOKEN_LIFETIME_MS,
      "not touched yet",
    );
    await checkToken(store, token, t0 + 2 * HOUR);
    assert.equal((await store.getToken(tokenHash(token)))?.expires, t0 + 2 * HOUR + TOKEN_LIFETIME_MS);
    const later = t0 + TOKEN_LIFETIME_MS + HOUR;
    assert.equal(
      (await checkToken(store, token, later)).ok,
      true,
      "used within its lifetime, so still valid",
    );
  });
});

Deno.test("tokens of a removed user, or revoked tokens, are unknown", async () => {
  await withStore(async (store) => {
    await store.addUser(await makeUser("alice", "pw"));
    await store.addUser(await makeUser("bob", "pw"));
    const a = await issueToken(store, "alice", "laptop", 0);
    const b = await issueToken(store, "bob", "phone", 0);
    await store.revokeTokens("bob");
    assert.deepEqual(await checkToken(store, b.token, 1), { ok: false, reason: "unknown" });
    await store.removeUser("alice");
    assert.deepEqual(await checkToken(store, a.token, 1), { ok: false, reason: "unknown" });
  });
});

Deno.test("a revoked device's token is refused as revoked (also past its expiry); a valid one is marked seen", async () => {
  await withStore(async (store) => {
    await store.addUser(await makeUser("alice", "pw"));
    const a = await issueToken(store, "alice", "laptop", 0);
    const b = await issueToken(store, "alice", "phone", 0);
    assert.ok((await checkToken(store, a.token, 50)).ok);
    assert.equal((await store.getToken(tokenHash(a.token)))?.lastSeen, 50);
    assert.equal(await tokenState(store, a.token), "valid");
    await store.revokeDevice("alice", a.record.deviceId, 60);
    assert.deepEqual(await checkToken(store, a.token, 70), { ok: false, reason: "revoked" });
    assert.deepEqual(await checkToken(store, a.token, TOKEN_LIFETIME_MS * 2), {
      ok: false,
      reason: "revoked",
    });
    assert.equal(
      (await store.getToken(tokenHash(a.token)))?.lastSeen,
      50,
      "a refused token is not marked seen",
    );
    assert.equal(await tokenState(store, a.token), "revoked");
    assert.equal(await tokenState(store, "not-a-token"), "unknown");
    assert.ok((await checkToken(store, b.token, 70)).ok, "the user's other device is not affected");
  });
});

Deno.test("LoginGuard: another node's failures count here, its success trusts the address here too", () => {
  const clock = { now: 1_000_000 };
  const heard: LoginOutcome[] = [];
  const node1 = new LoginGuard({ now: () => clock.now, userBurst: 100 }, { announce: (o) => heard.push(o) });
  const node2 = new LoginGuard({ now: () => clock.now, userBurst: 3 });
  for (let i = 0; i < 5; i++) {
    const d = node1.begin("alice", "a1");
    assert.ok(d.ok);
    node1.end(d.ticket, "failure");
  }
  const cancelled = node1.begin("alice", "a1");
  assert.equal(cancelled.ok, false, "node 1 makes a1 wait");
  for (const login of heard) node2.heard(login);
  assert.deepEqual(node2.begin("alice", "a1"), { ok: false, waitMs: 1000, reason: "source" });
  // The user's budget for new addresses was spent on node 1 as well.
  assert.deepEqual(node2.begin("alice", "a2"), { ok: false, waitMs: 6000 * 1, reason: "user" });
  // A success on node 1 clears a1 on node 2 and trusts it there.
  node2.heard({ user: "alice", address: "a1", outcome: "success" });
  assert.equal(node2.begin("alice", "a1").ok, true);
});
