// Passwords (scrypt, per-user salt), device tokens (random, stored hashed, expiring) and login rate limiting.
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
export type TokenCheck = { ok: true; record: TokenRecord } | { ok: false; reason: "unknown" | "expired" };

/** Looks a token up; a valid token's expiry slides forward (at most once an hour). */
export async function checkToken(store: MetadataStore, token: string, now = Date.now()): Promise<TokenCheck> {
  const hash = tokenHash(token);
  const record = await store.getToken(hash);
  if (!record || !(await store.getUser(record.user))) return { ok: false, reason: "unknown" };
  if (record.expires <= now) return { ok: false, reason: "expired" };
  if (record.expires - now < TOKEN_LIFETIME_MS - 3600_000) {
    await store.touchToken(hash, now + TOKEN_LIFETIME_MS);
  }
  return { ok: true, record };
}

/**
 * Failed-login limiter: after `free` failures for a key (user name or address) within the window, further
 * attempts wait for a delay that doubles with each failure, up to `maxDelayMs`.
 */
export class LoginLimiter {
  #failures = new Map<string, { count: number; last: number }>();
  #free: number;
  #baseDelayMs: number;
  #maxDelayMs: number;
  #windowMs: number;
  #now: () => number;

  /** Creates a limiter; defaults allow 5 free failures, then 1 s doubling up to 5 min, forgotten after 15 min. */
  constructor(
    options: {
      free?: number;
      baseDelayMs?: number;
      maxDelayMs?: number;
      windowMs?: number;
      now?: () => number;
    } = {},
  ) {
    this.#free = options.free ?? 5;
    this.#baseDelayMs = options.baseDelayMs ?? 1000;
    this.#maxDelayMs = options.maxDelayMs ?? 300_000;
    this.#windowMs = options.windowMs ?? 900_000;
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds the key must still wait before its next attempt (0 = may try now). */
  waitFor(key: string): number {
    const entry = this.#failures.get(key);
    if (!entry) return 0;
    const now = this.#now();
    if (now - entry.last > this.#windowMs) {
      this.#failures.delete(key);
      return 0;
    }
    if (entry.count < this.#free) return 0;
    const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (entry.count - this.#free));
    return Math.max(0, entry.last + delay - now);
  }

  /** Records a failed attempt. */
  fail(key: string): void {
    const entry = this.#failures.get(key);
    this.#failures.set(key, { count: (entry?.count ?? 0) + 1, last: this.#now() });
  }

  /** Forgets the key's failures after a success. */
  succeed(key: string): void {
    this.#failures.delete(key);
  }
}
