// Passwords (scrypt, per-user salt), device tokens (random, stored hashed, expiring), login limits and attack logs.
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { MetadataStore, TokenRecord, UserRecord } from "./metadata_store.ts";

const SCRYPT = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
/** How long a device token stays valid without use. */
export const TOKEN_LIFETIME_MS = 90 * 24 * 3600 * 1000;

function scryptAsync(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, 32, SCRYPT, (error, key) => error ? reject(error) : resolve(key))
  );
}

/** Hex SHA-256 of a token, the form in which tokens are stored. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Builds a user record with a fresh salt and the scrypt hash of the password. */
export async function makeUser(name: string, password: string, now = Date.now()): Promise<UserRecord> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt);
  return { name, salt: salt.toString("base64"), hash: hash.toString("base64"), created: now };
}

/** True if the password matches the user's stored hash (constant-time compare). */
export async function checkPassword(user: UserRecord, password: string): Promise<boolean> {
  const expected = Buffer.from(user.hash, "base64");
  const actual = await scryptAsync(password, Buffer.from(user.salt, "base64"));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Valid user names: letters, digits, dot, dash, underscore; 1–64 characters, not starting with a dot or dash. */
export function validateUserName(name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new TypeError(
      `Invalid user name "${name}": use 1-64 letters, digits, ".", "-" or "_", starting with a letter or digit`,
    );
  }
  return name;
}

/** Issues a new device token for a user; returns the token (shown once) and its record. */
export async function issueToken(
  store: MetadataStore,
  user: string,
  device: string,
  now = Date.now(),
): Promise<{ token: string; record: TokenRecord }> {
  const token = randomBytes(32).toString("base64url");
  const record: TokenRecord = {
    user,
    deviceId: randomBytes(8).toString("hex"),
    device,
    created: now,
    expires: now + TOKEN_LIFETIME_MS,
  };
  await store.addToken(tokenHash(token), record);
  return { token, record };
}

/** Why a token was refused. */
export type TokenCheck =
  | { ok: true; record: TokenRecord }
  | { ok: false; reason: "unknown" | "expired" | "revoked" };

/**
 * Looks a token up; a valid token's expiry slides forward (at most once an hour) and its device is marked seen
 * now. A revoked token is refused with reason "revoked" (so the device can be told), before its expiry counts.
 */
export async function checkToken(store: MetadataStore, token: string, now = Date.now()): Promise<TokenCheck> {
  const hash = tokenHash(token);
  const record = await store.getToken(hash);
  if (!record || !(await store.getUser(record.user))) return { ok: false, reason: "unknown" };
  if (record.revoked !== undefined) return { ok: false, reason: "revoked" };
  if (record.expires <= now) return { ok: false, reason: "expired" };
  if (record.expires - now < TOKEN_LIFETIME_MS - 3600_000) {
    await store.touchToken(hash, now + TOKEN_LIFETIME_MS);
  }
  await store.markSeen(hash, now);
  return { ok: true, record };
}

/** Whether a token is still stored and not revoked, now (a read only; expiry is not looked at). */
export async function tokenState(
  store: MetadataStore,
  token: string,
): Promise<"valid" | "revoked" | "unknown"> {
  const record = await store.getToken(tokenHash(token));
  if (record === null) return "unknown";
  return record.revoked === undefined ? "valid" : "revoked";
}

/** Limits of {@linkcode LoginGuard}. */
export interface LoginPolicy {
  /** Failed attempts one address may make for one user before the delays start. @default 5 */
  perSourceFree?: number;
  /** Failed attempts one address may make over all user names before the delays start. @default 10 */
  perAddressFree?: number;
  /** First delay after the free attempts; it doubles with each further failure. @default 1000 */
  baseDelayMs?: number;
  /** Longest delay. @default 300000 */
  maxDelayMs?: number;
  /** Failures older than this are forgotten. @default 900000 */
  windowMs?: number;
  /** Attempts for one user from addresses it never logged in from, as a burst… @default 10 */
  userBurst?: number;
  /** …refilled by one every this many ms (a slow global rate that one address cannot use up). @default 6000 */
  userRefillMs?: number;
  /** How long a successful login keeps its address trusted for that user. @default 30 days */
  trustMs?: number;
  /** Most keys remembered per table (oldest are dropped first). @default 100000 */
  maxKeys?: number;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** The answer of {@linkcode LoginGuard.begin}: go ahead (and report the outcome), or wait. */
export type LoginDecision =
  | { ok: true; ticket: LoginTicket }
  | { ok: false; waitMs: number; reason: "source" | "address" | "user" };

/** An attempt that has been counted; hand it back to {@linkcode LoginGuard.end}. */
export interface LoginTicket {
  readonly user: string;
  readonly address: string;
  readonly trusted: boolean;
}

interface Failures {
  count: number;
  last: number;
}

/** A login another node checked: the other nodes count it too (see {@linkcode LoginGuard.heard}). */
export interface LoginOutcome {
  user: string;
  address: string;
  outcome: "success" | "failure";
}

/** Options of {@linkcode LoginGuard} beyond its policy. */
export interface LoginGuardOptions {
  /** Tells the other nodes of each checked login. @default nobody */
  announce?: (login: LoginOutcome) => void;
}

/**
 * Login limits that hold under concurrency and cannot be turned against the owner. Each attempt is counted in
 * {@linkcode LoginGuard.begin}, before its password is hashed, so pipelined or parallel guesses cannot slip past:
 *
 * - per user and address: `perSourceFree` failures, then a delay doubling up to `maxDelayMs`; only that
 *   address waits, so an attacker cannot lock the owner out from elsewhere;
 * - per address over all names: `perAddressFree` failures, then the same delays (stops name spraying);
 * - per user from addresses that never logged in as that user: a token bucket (`userBurst`, one more every
 *   `userRefillMs`), which bounds a guessing attack spread over many addresses. Addresses the user logged in
 *   from successfully are exempt, and devices with a token never pass here at all.
 *
 * @example
 * ```ts
 * const guard = new LoginGuard();
 * const d = guard.begin("alice", "192.0.2.1");
 * if (d.ok) guard.end(d.ticket, passwordMatched ? "success" : "failure");
 * ```
 */
export class LoginGuard {
  #source = new Map<string, Failures>();
  #address = new Map<string, Failures>();
  #buckets = new Map<string, { tokens: number; at: number }>();
  #trusted = new Map<string, number>();
  #p: Required<Omit<LoginPolicy, "now">>;
  #now: () => number;
  #announce: (login: LoginOutcome) => void;

  /** Creates a guard with the given limits. */
  constructor(policy: LoginPolicy = {}, options: LoginGuardOptions = {}) {
    this.#announce = options.announce ?? (() => {});
    this.#p = {
      perSourceFree: policy.perSourceFree ?? 5,
      perAddressFree: policy.perAddressFree ?? 10,
      baseDelayMs: policy.baseDelayMs ?? 1000,
      maxDelayMs: policy.maxDelayMs ?? 300_000,
      windowMs: policy.windowMs ?? 900_000,
      userBurst: policy.userBurst ?? 10,
      userRefillMs: policy.userRefillMs ?? 6000,
      trustMs: policy.trustMs ?? 30 * 24 * 3600_000,
      maxKeys: policy.maxKeys ?? 100_000,
    };
    this.#now = policy.now ?? Date.now;
  }

  /** Counts an attempt for `user` from `address` before its password is checked, or says how long to wait. */
  begin(user: string, address: string): LoginDecision {
    const now = this.#now();
    const sourceKey = `${user}\n${address}`;
    const source = this.#waitFor(this.#source, sourceKey, this.#p.perSourceFree, now);
    if (source > 0) return { ok: false, waitMs: source, reason: "source" };
    const byAddress = this.#waitFor(this.#address, address, this.#p.perAddressFree, now);
    if (byAddress > 0) return { ok: false, waitMs: byAddress, reason: "address" };
    const trustedUntil = this.#trusted.get(sourceKey) ?? 0;
    const trusted = trustedUntil > now;
    if (!trusted) {
      const bucket = this.#bucket(user, now);
      if (bucket.tokens < 1) {
        return { ok: false, waitMs: Math.ceil((1 - bucket.tokens) * this.#p.userRefillMs), reason: "user" };
      }
      bucket.tokens -= 1;
    }
    // Counted as a failure now; a success takes it back.
    this.#count(this.#source, sourceKey, now);
    this.#count(this.#address, address, now);
    return { ok: true, ticket: { user, address, trusted } };
  }

  /** Reports how a counted attempt ended: a wrong password, a success, or not checked at all (server busy). */
  end(ticket: LoginTicket, outcome: "success" | "failure" | "cancelled"): void {
    if (outcome !== "cancelled") this.#announce({ user: ticket.user, address: ticket.address, outcome });
    if (outcome === "failure") return;
    const now = this.#now();
    const sourceKey = `${ticket.user}\n${ticket.address}`;
    if (!ticket.trusted) {
      const bucket = this.#bucket(ticket.user, now);
      bucket.tokens = Math.min(this.#p.userBurst, bucket.tokens + 1);
    }
    if (outcome === "success") {
      this.#source.delete(sourceKey);
      this.#address.delete(ticket.address);
      this.#trusted.delete(sourceKey);
      this.#trusted.set(sourceKey, now + this.#p.trustMs);
      this.#trim(this.#trusted);
    } else {
      this.#uncount(this.#source, sourceKey);
      this.#uncount(this.#address, ticket.address);
    }
  }

  /**
   * Counts a login another node checked as if it was checked here: a failure counts against its user and
   * address, a success clears them and trusts the address. Approximate across nodes: a note comes a little
   * late (attempts racing on several nodes each pass), or is lost with the bus's connection.
   */
  heard(login: LoginOutcome): void {
    const now = this.#now();
    const sourceKey = `${login.user}\n${login.address}`;
    if (login.outcome === "success") {
      this.#source.delete(sourceKey);
      this.#address.delete(login.address);
      this.#trusted.delete(sourceKey);
      this.#trusted.set(sourceKey, now + this.#p.trustMs);
      this.#trim(this.#trusted);
      return;
    }
    this.#count(this.#source, sourceKey, now);
    this.#count(this.#address, login.address, now);
    if ((this.#trusted.get(sourceKey) ?? 0) <= now) {
      const bucket = this.#bucket(login.user, now);
      bucket.tokens = Math.max(0, bucket.tokens - 1);
    }
  }

  #waitFor(table: Map<string, Failures>, key: string, free: number, now: number): number {
    const entry = table.get(key);
    if (!entry) return 0;
    if (now - entry.last > this.#p.windowMs) {
      table.delete(key);
      return 0;
    }
    if (entry.count < free) return 0;
    const delay = Math.min(this.#p.maxDelayMs, this.#p.baseDelayMs * 2 ** Math.min(40, entry.count - free));
    return Math.max(0, entry.last + delay - now);
  }

  #count(table: Map<string, Failures>, key: string, now: number): void {
    const entry = table.get(key);
    table.delete(key);
    table.set(key, { count: (entry?.count ?? 0) + 1, last: now });
    this.#trim(table);
  }

  #uncount(table: Map<string, Failures>, key: string): void {
    const entry = table.get(key);
    if (!entry) return;
    if (entry.count <= 1) table.delete(key);
    else entry.count--;
  }

  #bucket(user: string, now: number): { tokens: number; at: number } {
    let bucket = this.#buckets.get(user);
    if (!bucket) {
      bucket = { tokens: this.#p.userBurst, at: now };
      this.#buckets.set(user, bucket);
      this.#trim(this.#buckets);
    }
    bucket.tokens = Math.min(this.#p.userBurst, bucket.tokens + (now - bucket.at) / this.#p.userRefillMs);
    bucket.at = now;
    return bucket;
  }

  #trim<V>(table: Map<string, V>): void {
    // Maps keep insertion order: the first keys are the oldest.
    while (table.size > this.#p.maxKeys) table.delete(table.keys().next().value!);
  }
}

/** Thrown by {@linkcode CheckQueue.run} when every slot and every place in the queue is taken. */
export class BusyError extends Error {
  override name = "BusyError";
}

/**
 * A small semaphore with a bounded wait queue, for password checks: at most `concurrency` run at once (scrypt
 * is slow on purpose; unbounded, it takes every core from syncing), at most `maxWaiting` wait, and the rest are
 * refused at once with {@linkcode BusyError}.
 *
 * @example
 * ```ts
 * const checks = new CheckQueue({ concurrency: 1, maxWaiting: 8 });
 * const ok = await checks.run(() => checkPassword(user, password));
 * ```
 */
export class CheckQueue {
  #running = 0;
  #waiting: (() => void)[] = [];
  #concurrency: number;
  #maxWaiting: number;

  /** Creates a queue; by default half the cores (at least one) run checks and 16 may wait. */
  constructor(options: { concurrency?: number; maxWaiting?: number } = {}) {
    this.#concurrency = options.concurrency ?? Math.max(1, Math.floor(navigator.hardwareConcurrency / 2));
    this.#maxWaiting = options.maxWaiting ?? 16;
  }

  /** Checks running now. */
  get running(): number {
    return this.#running;
  }

  /** Checks waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `task` when a slot is free; throws {@linkcode BusyError} at once if the queue is full. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#concurrency) {
      if (this.#waiting.length >= this.#maxWaiting) throw new BusyError("Too many logins at once");
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so the count never dips and lets a newcomer jump in.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

/**
 * Log lines about attacks, at most one per key and interval: the first event is logged at once, later ones
 * are counted and summed up in one line when the interval has passed.
 *
 * @example
 * ```ts
 * const log = new AttackLog(console.log);
 * log.note("login:alice@192.0.2.1", "login refused for alice from 192.0.2.1: too many failed attempts");
 * ```
 */
export class AttackLog {
  #log: (line: string) => void;
  #intervalMs: number;
  #now: () => number;
  #keys = new Map<string, { since: number; suppressed: number; line: string }>();

  /** Creates a log writing to `log`; `intervalMs` defaults to 60 s. */
  constructor(log: (line: string) => void, options: { intervalMs?: number; now?: () => number } = {}) {
    this.#log = log;
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Records one event; logs `line` unless a line for `key` was logged within the interval. */
  note(key: string, line: string): void {
    const now = this.#now();
    const entry = this.#keys.get(key);
    if (entry && now - entry.since < this.#intervalMs) {
      entry.suppressed++;
      entry.line = line;
      return;
    }
    if (entry) this.#summarize(entry, now);
    this.#keys.delete(key);
    this.#keys.set(key, { since: now, suppressed: 0, line });
    this.#log(line);
    while (this.#keys.size > 10_000) this.#keys.delete(this.#keys.keys().next().value!);
  }

  /** Logs the summary of every key whose interval has passed (call it now and then). */
  flush(): void {
    const now = this.#now();
    for (const [key, entry] of this.#keys) {
      if (now - entry.since < this.#intervalMs) continue;
      this.#summarize(entry, now);
      this.#keys.delete(key);
    }
  }

  #summarize(entry: { since: number; suppressed: number; line: string }, now: number): void {
    if (entry.suppressed === 0) return;
    const seconds = Math.round((now - entry.since) / 1000);
    this.#log(`${entry.line} (${entry.suppressed} more like it in the last ${seconds} s)`);
  }
}
