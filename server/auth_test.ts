// Tests for passwords, user names, the login limiter (with an injected clock) and device tokens.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkPassword,
  checkToken,
  issueToken,
  LoginLimiter,
  makeUser,
  TOKEN_LIFETIME_MS,
  tokenHash,
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

Deno.test("LoginLimiter allows the free failures, then doubles the delay up to the cap", () => {
  let now = 1_000_000;
  const limiter = new LoginLimiter({ free: 3, baseDelayMs: 1000, maxDelayMs: 5000, now: () => now });
  assert.equal(limiter.waitFor("user:a"), 0);
  limiter.fail("user:a");
  limiter.fail("user:a");
  assert.equal(limiter.waitFor("user:a"), 0, "two failures are free");
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    limiter.fail("user:a");
    delays.push(limiter.waitFor("user:a"));
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 5000, 5000]);
  now += 3000;
  assert.equal(limiter.waitFor("user:a"), 2000, "the delay counts from the last failure");
  now += 2000;
  assert.equal(limiter.waitFor("user:a"), 0);
  assert.equal(limiter.waitFor("user:b"), 0, "other keys are not affected");
});

Deno.test("LoginLimiter forgets a key on success", () => {
  const limiter = new LoginLimiter({ free: 1, now: () => 0 });
  limiter.fail("k");
  limiter.fail("k");
  assert.ok(limiter.waitFor("k") > 0);
  limiter.succeed("k");
  assert.equal(limiter.waitFor("k"), 0);
  limiter.fail("k");
  assert.equal(limiter.waitFor("k"), 1000, "counting starts again from zero");
});

Deno.test("LoginLimiter forgets failures older than the window", () => {
  let now = 0;
  const limiter = new LoginLimiter({
    free: 2,
    baseDelayMs: 1000,
    maxDelayMs: 300_000,
    windowMs: 60_000,
    now: () => now,
  });
  for (let i = 0; i < 10; i++) limiter.fail("k");
  assert.equal(limiter.waitFor("k"), 256_000);
  now += 60_000;
  assert.equal(limiter.waitFor("k"), 196_000, "still inside the window");
  now += 1;
  assert.equal(limiter.waitFor("k"), 0, "the window has passed");
  limiter.fail("k");
  limiter.fail("k");
  assert.equal(limiter.waitFor("k"), 1000, "old failures no longer count");
});

Deno.test("LoginLimiter defaults: five free failures, then one second", () => {
  const limiter = new LoginLimiter({ now: () => 0 });
  for (let i = 0; i < 4; i++) limiter.fail("k");
  assert.equal(limiter.waitFor("k"), 0);
  limiter.fail("k");
  assert.equal(limiter.waitFor("k"), 1000);
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
