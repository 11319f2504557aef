// Fuzzing of frames, RPC and every message schema, both ways: hostile client vs a real server session, hostile
// server vs the client's handling. Run: deno task fuzz [--cases N] [--seed S] [--tls N]
import { parseArgs } from "node:util";
import { join } from "node:path";
import { ensureServerCertificate } from "../certs/ca.ts";
import { openConnection } from "../client/connection.ts";
import { MountTable } from "../client/mounts.ts";
import { ClientState } from "../client/state.ts";
import { fetchFile, fetchSmallFiles } from "../client/transfer.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameError } from "../protocol/frame.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { ALPN, encodeRows, PROTOCOL_VERSION, Requests } from "../protocol/messages.ts";
import { BadMessageError, checkPush, checkReply, Replies } from "../protocol/replies.ts";
import { type Duplex, memoryPipe, type Reply, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { issueToken, LoginGuard } from "../server/auth.ts";
import { DiskChunkStore } from "../server/chunk_store.ts";
import { Hub } from "../server/hub.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import { runAdmin, startServer } from "../server/server.ts";
import { Session, type SessionContext } from "../server/session.ts";

/** Longest a single case may take before it counts as a hang. */
const CASE_DEADLINE_MS = 5000;
/** Heap growth over a run above which memory counts as unbounded. */
const MAX_HEAP_GROWTH_BYTES = 256 * 1024 * 1024;

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Cases in memory (frames, schemas, sessions, client handling). */
  cases: number;
  /** Cases over real TLS (half hostile client, half hostile server). @default 0 */
  tlsCases?: number;
  /** PRNG seed; each case draws from its own generator seeded with (seed, case index), so one case replays alone. */
  seed: number;
  /** Run only this case index (to replay a failure). */
  only?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** What a run found. */
export interface FuzzResult {
  /** Cases run. */
  cases: number;
  /** Cases and milliseconds by kind (pure, client, server, tls-client, tls-server). */
  kinds: Record<string, { cases: number; ms: number }>;
  /** One line per failing case (kind, index, what went wrong); empty when nothing crashed, hung or grew. */
  failures: string[];
  /** Largest heap seen (sampled every 500 cases). */
  peakHeapBytes: number;
  /** Heap at the end minus heap at the start (after a full collection when `gc` is exposed). */
  heapGrowthBytes: number;
  /** Wall time of the run. */
  ms: number;
}

/** /dev/shm if it is a writable folder, else undefined (the system temp folder). */
function inRam(): string | undefined {
  try {
    return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** A small seeded PRNG (mulberry32). */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const encoder = new TextEncoder();
const CHUNK = encoder.encode("fuzz file content");
const CHUNK_ID = sha256Hex(CHUNK);
const FILE_HASH = fileHashOfChunks([CHUNK_ID]);
const H = "0".repeat(64);

/** Values that break schemas in the usual ways. */
function hostileValue(rng: Rng): unknown {
  switch (rng.int(22)) {
    case 0:
      return -1;
    case 1:
      return 1.5;
    case 2:
      return 2 ** 60;
    case 3:
      return 1e308;
    case 4:
      return "";
    case 5:
      return "x".repeat(rng.int(70_000));
    case 6:
      return "../escape";
    case 7:
      return ".filesync/x";
    case 8:
      return "/etc/passwd";
    case 9:
      return "a\u202eb\u0000c";
    case 10:
      return null;
    case 11:
      return [];
    case 12:
      return {};
    case 13:
      return true;
    case 14: {
      let deep: unknown = 1;
      for (let i = rng.int(3000); i > 0; i--) deep = [deep];
      return deep;
    }
    case 15:
      return Array.from({ length: rng.int(5000) }, () => H);
    case 16:
      return rng.int(100);
    case 17:
      return "\ud800";
    case 18:
      return { path: "../x", kind: "file", hash: H, size: -1, mtime: 0, rev: 1, device: "d" };
    case 19:
      return H;
    case 20:
      return Number.MAX_SAFE_INTEGER + 2;
    default:
      return rng.int(2) === 0 ? "CON" : "a.txt";
  }
}

/** A copy of `value` with one random field replaced, removed or added (or the whole value replaced). */
function mutate(value: unknown, rng: Rng, depth = 0): unknown {
  if (depth > 6 || rng.chance(0.15) || value === null || typeof value !== "object") {
    return rng.chance(0.8) ? hostileValue(rng) : value;
  }
  if (Array.isArray(value)) {
    const copy = [...value];
    const roll = rng.int(5);
    if (copy.length === 0 || roll === 0) copy.push(hostileValue(rng));
    else if (roll === 1) copy.splice(rng.int(copy.length), 1);
    else {
      const i = rng.int(copy.length);
      copy[i] = mutate(copy[i], rng, depth + 1);
    }
    return copy;
  }
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  const roll = rng.int(10);
  if (keys.length === 0 || roll === 0) {
    // An own property, even for "__proto__" (as JSON.parse would make it).
    Object.defineProperty(copy, rng.pick(["x", "__proto__", "constructor", "re", "id", "op"]), {
      value: hostileValue(rng),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else if (roll === 1) delete copy[rng.pick(keys)];
  else {
    const key = rng.pick(keys);
    copy[key] = mutate(copy[key], rng, depth + 1);
  }
  return copy;
}

/** Byte-level damage to an encoded frame. */
function damage(bytes: Uint8Array, rng: Rng, maxFrame: number): Uint8Array {
  const out = new Uint8Array(bytes);
  switch (rng.int(6)) {
    case 0: // truncated
      return out.subarray(0, rng.int(out.length));
    case 1: { // flipped bytes
      for (let i = rng.int(8) + 1; i > 0; i--) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    }
    case 2: { // a length header that lies (oversized or short)
      new DataView(out.buffer).setUint32(
        0,
        rng.chance(0.5) ? maxFrame + 1 + rng.int(1e9) : rng.int(out.length),
      );
      return out;
    }
    case 3: // unknown frame type
      out[4] = rng.int(256);
      return out;
    case 4: // random garbage
      return Uint8Array.from({ length: rng.int(300) }, () => rng.int(256));
    default: { // a data frame's JSON length overrunning
      if (out[4] === 2 && out.length >= 9) new DataView(out.buffer).setUint32(5, rng.int(2 ** 32));
      return out;
    }
  }
}

/** Valid requests of every op (the fuzz starts from these). */
export function validRequests(token: string): { message: Record<string, unknown>; data?: Uint8Array }[] {
  const rows = encodeRows([{ id: CHUNK_ID, size: CHUNK.length }]);
  return [
    { message: { op: "HELLO", version: PROTOCOL_VERSION, agent: "fuzz" } },
    { message: { op: "AUTH", token } },
    { message: { op: "LOGIN", user: "fuzz", password: "wrong password", device: "d" } },
    { message: { op: "PING" } },
    { message: { op: "CHANGES", since: 0, limit: 10 } },
    { message: { op: "MONITOR", since: 0 } },
    { message: { op: "HAVE", hashes: [CHUNK_ID, H] } },
    { message: { op: "PUT", hash: CHUNK_ID }, data: CHUNK },
    { message: { op: "GET", hash: CHUNK_ID } },
    { message: { op: "DOWNLOAD", path: "a.txt" } },
    { message: { op: "DOWNLOAD", path: "a.txt", base: FILE_HASH } },
    {
      message: {
        op: "COMMIT",
        changes: [
          {
            op: "upload",
            path: "f/b.txt",
            baseRev: 0,
            size: CHUNK.length,
            mtime: 1,
            hash: FILE_HASH,
            rows: { offset: 0, count: 1 },
          },
          { op: "mkdir", path: "d", baseRev: 0 },
          { op: "move", from: "f/b.txt", path: "f/c.txt", baseRev: 0 },
          {
            op: "delete",
            path: "d",
            baseRev: 0,
            kind: "dir",
          },
        ],
      },
      data: rows,
    },
    { message: { op: "VERSIONS", path: "a.txt" } },
    { message: { op: "TRASH" } },
    { message: { op: "RESTORE", path: "f/b.txt" } },
    { message: { op: "DEVICES" } },
    { message: { op: "LOCK", path: "a.txt", minutes: 30 } },
    { message: { op: "UNLOCK", path: "a.txt", force: true } },
    { message: { op: "LOCKS" } },
    // Namespaces: the own one named, another user's and an unknown one (refused), and malformed ids.
    { message: { op: "MONITOR", since: 0, ns: "fuzz" } },
    { message: { op: "CHANGES", since: 0, ns: "other" } },
    { message: { op: "DOWNLOAD", path: "a.txt", ns: "fuzz" } },
    { message: { op: "PUT", hash: CHUNK_ID, ns: "other" }, data: CHUNK },
    {
      message: { op: "COMMIT", changes: [{ op: "mkdir", path: "n", baseRev: 0 }], ns: "share:nobody" },
    },
    { message: { op: "VERSIONS", path: "a.txt", ns: "../fuzz" } },
    { message: { op: "TRASH", ns: "fuzz" } },
    { message: { op: "RESTORE", path: "a.txt", ns: "" } },
    { message: { op: "LOCK", path: "a.txt", renew: true, ns: "other" } },
    { message: { op: "LOCKS", ns: "fuzz" } },
    // Sharing: grants, taking back, listing; with a path not there, a user not there, a namespace not one's own.
    { message: { op: "SHARE", path: "a.txt", with: "other", access: "read" } },
    { message: { op: "SHARE", path: "f", with: "fuzz", access: "write", ns: "other" } },
    { message: { op: "UNSHARE", path: "a.txt", with: "other" } },
    { message: { op: "UNSHARE", path: "f" } },
    { message: { op: "SHARES" } },
    { message: { op: "MONITOR", since: 0, ns: "other", path: "f" } },
    { message: { op: "CHANGES", since: 0, ns: "fuzz", path: "f" } },
    { message: { op: "LOCKS", ns: "other", path: "f" } },
    // FETCH: the own file, another user's namespace (refused per item) and a path not there.
    {
      message: {
        op: "FETCH",
        items: [
          { path: "a.txt", ns: "fuzz", rev: 1 },
          { path: "a.txt", ns: "other", rev: 1 },
          { path: "none.txt", rev: 1 },
        ],
      },
    },
  ];
}

/** The frames of one hostile-client case, as bytes. */
function hostileClientBytes(
  rng: Rng,
  token: string,
  maxFrame: number,
): { frames: Uint8Array[]; damaged: boolean } {
  const corpus = validRequests(token);
  const frames: Uint8Array[] = [];
  let damaged = false;
  let id = 1;
  const add = (message: Record<string, unknown>, data?: Uint8Array) =>
    frames.push(encodeFrame({ ...message, id: id++ }, data));
  if (rng.chance(0.8)) add(corpus[0].message);
  if (rng.chance(0.7)) add(corpus[1].message);
  for (let n = rng.int(6) + 1; n > 0; n--) {
    const pick = rng.chance(0.03) ? corpus[2] : rng.pick(corpus);
    const roll = rng.int(10);
    if (roll < 3) add(pick.message, pick.data);
    else if (roll < 7) {
      const message = mutate(pick.message, rng) as Record<string, unknown>;
      const safe = typeof message === "object" && message !== null && !Array.isArray(message)
        ? message
        : { op: "PING", junk: message };
      if (rng.chance(0.1)) frames.push(encodeFrame(safe, pick.data));
      else add(safe, pick.data && rng.chance(0.5) ? damage(pick.data, rng, maxFrame) : pick.data);
    } else {
      damaged = true;
      frames.push(damage(encodeFrame({ ...pick.message, id: id++ }, pick.data), rng, maxFrame));
    }
  }
  return { frames, damaged };
}

/** Reads frames from `end` until a reply to `re` arrives, the stream ends, or bytes pass `cap`. */
async function readUntil(end: Duplex, re: number, cap: number): Promise<{ internal: boolean }> {
  const decoder = new FrameDecoder({ maxFrameBytes: 32 * 1024 * 1024 });
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  let internal = false;
  while (total < cap) {
    let n: number | null;
    try {
      n = await end.read(buffer);
    } catch {
      break;
    }
    if (n === null) break;
    total += n;
    for (const frame of decoder.push(buffer.subarray(0, n))) {
      if (frame.message.code === "internal") internal = true;
      if (frame.message.re === re) return { internal };
    }
  }
  return { internal };
}

/** Writes all of `bytes` (a TLS write may take only part of them). */
async function writeAll(end: Duplex, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await end.write(bytes.subarray(at));
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`hang: ${what}`)), ms)),
  ]).finally(() => clearTimeout(timer));
}

/** A valid lock, as LOCK, UNLOCK, LOCKS and the locks push carry it. */
const FUZZ_LOCK = {
  path: "a.txt",
  user: "fuzz",
  deviceId: "0123456789abcdef",
  device: "d",
  expires: 1,
  remainingMs: 1,
  leaseMs: 1,
  mine: false,
};

/** Valid replies by op, as a real server sends them (the hostile server mutates these). */
export function validReplies(rev: number): Record<string, Reply> {
  const entry = {
    path: "a.txt",
    kind: "file",
    hash: FILE_HASH,
    size: CHUNK.length,
    mtime: 1,
    rev,
    device: "d",
  };
  const inline = new Uint8Array(36 + CHUNK.length);
  inline.set(encodeRows([{ id: CHUNK_ID, size: CHUNK.length }]));
  inline.set(CHUNK, 36);
  return {
    HELLO: { body: { version: PROTOCOL_VERSION, server: "filesync" } },
    LOGIN: {
      body: {
        token: "t".repeat(43),
        deviceId: "0123456789abcdef",
        user: "fuzz",
        expires: 1,
        namespaces: [{ ns: "fuzz", role: "owner", name: "fuzz", mount: "" }],
      },
    },
    AUTH: {
      body: {
        user: "fuzz",
        deviceId: "0123456789abcdef",
        device: "d",
        namespaces: [
          { ns: "fuzz", role: "owner", name: "fuzz", mount: "" },
          { ns: "share:1", role: "read", name: "Team", mount: "Team" },
        ],
      },
    },
    PING: {},
    CHANGES: { body: { events: [entry], latest: rev } },
    MONITOR: { body: { cursor: rev } },
    HAVE: { body: { missing: [CHUNK_ID] } },
    PUT: {},
    GET: { data: CHUNK },
    DOWNLOAD: rev % 2 === 0
      ? { body: { entry, inline: 1 }, data: inline }
      : { body: { entry }, data: encodeRows([{ id: CHUNK_ID, size: CHUNK.length }]) },
    COMMIT: { body: { results: [{ ok: true, entries: [entry] }] } },
    VERSIONS: {
      body: {
        versions: [{ id: "1", time: 1, size: 1, mtime: 1, hash: FILE_HASH, device: "d", current: true }],
      },
    },
    TRASH: {
      body: { items: [{ path: "a.txt", kind: "file", deletedAt: 1, device: "d", size: 1, version: "1" }] },
    },
    RESTORE: { body: { path: "a.txt", kind: "file", version: "1", entries: [entry], skipped: [] } },
    DEVICES: {
      body: {
        devices: [{ deviceId: "0123456789abcdef", device: "d", created: 1, expires: 2, current: true }],
      },
    },
    LOCK: { body: { lock: FUZZ_LOCK, renewed: false } },
    UNLOCK: { body: { released: FUZZ_LOCK } },
    LOCKS: { body: { locks: [FUZZ_LOCK] } },
    SHARE: { body: { share, changed: "new" } },
    UNSHARE: { body: { removed: [share] } },
    SHARES: { body: { mine: [share], withMe: [{ ...share, owner: "other", user: "fuzz" }] } },
    FETCH: { body: { items: [{ path: "a.txt", ns: "fuzz", entry, at: 0 }] }, data: CHUNK },
  };
}

/** A valid grant, as SHARE, UNSHARE and SHARES replies and the namespaces push carry it. */
const share = { ns: "fuzz", path: "f", owner: "fuzz", user: "other", access: "write", mount: "f" };

/** Valid pushes, as a real server sends them (the hostile server mutates these). */
export const PUSHES = (rev: number) => [
  {
    push: "events",
    events: [{
      path: "a.txt",
      kind: "file",
      hash: FILE_HASH,
      size: CHUNK.length,
      mtime: 1,
      rev,
      device: "d",
    }],
  },
  { push: "snapshot", entries: [], first: true, last: true, cursor: rev },
  { push: "snapshot", ns: "fuzz", entries: [], first: true, last: true, cursor: rev },
  { push: "events", ns: "share:9", events: [] },
  { push: "error", code: "x", error: "something" },
  {
    push: "locks",
    locks: [FUZZ_LOCK],
    change: { path: "a.txt", what: "taken", by: "d" },
  },
  { push: "locks", ns: "share:1", locks: [], change: { path: "a.txt", what: "released", by: "d" } },
  { push: "events", ns: "other", path: "f", events: [] },
  {
    push: "namespaces",
    namespaces: [
      { ns: "fuzz", role: "owner", name: "fuzz", mount: "" },
      { ns: "other", role: "read", name: "f", mount: "f", path: "f", owner: "other" },
    ],
    change: "new",
    share: { ns: "other", path: "f", owner: "other", user: "fuzz", access: "read", mount: "f" },
  },
];

/** The client's side of one connection: reply checks, push checks applied to a real client state, downloads. */
async function hostileServerCase(
  rng: Rng,
  client: Duplex,
  server: Duplex,
  state: ClientState,
  tmpDir: string,
): Promise<string | null> {
  const rev = rng.int(1000) + 1;
  const replies = validReplies(rev);
  const raw = rng.chance(0.3);
  let problem: string | null = null;
  const onPush = (frame: Frame) => {
    try {
      const push = checkPush(frame.message);
      if (push.push === "events") state.applyEvents(push.events, push.ns ?? state.mounts.root);
      else if (push.push === "snapshot") {
        state.applySnapshot(push.entries, {
          first: push.first,
          last: push.last,
          cursor: push.cursor,
          tag: push.tag,
          ns: push.ns,
        });
      }
    } catch (error) {
      if (!(error instanceof BadMessageError)) problem ??= `push handling threw ${String(error)}`;
    }
  };
  const peer = new RpcPeer(client, { checkReply, onPush });
  let fake: RpcPeer | null = null;
  if (!raw) {
    fake = new RpcPeer(server, {
      onRequest: (frame) => {
        for (let i = rng.int(3); i > 0; i--) {
          const push = rng.chance(0.5) ? rng.pick(PUSHES(rev)) : mutate(rng.pick(PUSHES(rev)), rng);
          if (push && typeof push === "object" && !Array.isArray(push)) {
            fake!.push(push as Record<string, unknown>);
          }
        }
        const valid = replies[String(frame.message.op)] ?? {};
        if (rng.chance(0.1)) {
          // An error reply with hostile code and text (strings only: String() of a deep array overflows).
          const text = () => {
            const v = hostileValue(rng);
            return typeof v === "string" ? v : JSON.stringify(v)?.slice(0, 200) ?? "";
          };
          throw new RpcError(text().slice(0, 100), text());
        }
        if (rng.chance(0.3)) return Promise.resolve(valid);
        const body = rng.chance(0.7) ? mutate(valid.body ?? {}, rng) : valid.body;
        const data = valid.data && rng.chance(0.5) ? damage(valid.data, rng, 1 << 24) : valid.data;
        const safe = body && typeof body === "object" && !Array.isArray(body)
          ? body as Record<string, unknown>
          : {};
        return Promise.resolve({ body: safe, data });
      },
    });
  }
  const ops = Object.keys(Replies);
  const pending: Promise<unknown>[] = [];
  // Every request may fail (that is what a hostile server is for), but only with an Error.
  const expectError = (promise: Promise<unknown>) =>
    promise.catch((error) => {
      if (!(error instanceof Error)) problem ??= `rejected with ${String(error)}`;
    });
  for (let n = rng.int(3) + 1; n > 0; n--) {
    const op = rng.pick([...ops, "DOWNLOAD", "DOWNLOAD", "DOWNLOAD", "FETCH"]);
    if (op === "FETCH") {
      const wanted = [{ path: "a.txt", rev, at: { ns: "fuzz", path: "a.txt" } }];
      pending.push(expectError(
        fetchSmallFiles(peer, tmpDir, wanted).then(async (results) => {
          for (const fetched of results) {
            if (!fetched || fetched instanceof Error) continue;
            if (!fetched.tmpPath.startsWith(tmpDir + "/")) problem ??= `fetch wrote ${fetched.tmpPath}`;
            await Deno.remove(fetched.tmpPath).catch(() => {});
          }
        }),
      ));
    } else if (op === "DOWNLOAD") {
      pending.push(expectError(
        fetchFile(peer, tmpDir, "a.txt", rev).then(async (fetched) => {
          const name = fetched.tmpPath.slice(tmpDir.length + 1);
          if (
            !fetched.tmpPath.startsWith(tmpDir + "/") || !/^[0-9a-f]{64}\.[0-9a-f]{16}\.partial$/.test(name)
          ) {
            problem ??= `download wrote ${fetched.tmpPath}`;
          }
          await Deno.remove(fetched.tmpPath).catch(() => {});
        }),
      ));
    } else {
      const request = validRequests("t".repeat(43)).find((r) => r.message.op === op);
      const { op: _op, ...body } = request?.message ?? {};
      pending.push(expectError(peer.request(op, body, request?.data)));
    }
  }
  if (raw) {
    // The server answers with damaged bytes of replies to ids 1..3, then hangs up.
    const chunks: Uint8Array[] = [];
    for (let id = 1; id <= 3; id++) {
      const op = rng.pick(ops);
      const valid = replies[op];
      const body = rng.chance(0.5) ? mutate(valid.body ?? {}, rng) : valid.body;
      const safe = body && typeof body === "object" && !Array.isArray(body)
        ? body as Record<string, unknown>
        : {};
      const bytes = encodeFrame({ ...safe, re: id, ok: true }, valid.data);
      chunks.push(rng.chance(0.6) ? damage(bytes, rng, 1 << 24) : bytes);
    }
    // With a deadline: a client that refused the first frame stops reading, and the writes then wait.
    const writing = (async () => {
      for (const chunk of chunks) await writeAll(server, chunk);
    })().catch(() => {});
    await withDeadline(writing, 50, "raw writes").catch(() => {});
    server.close();
  }
  const settled = Promise.allSettled(pending).then((results) => {
    for (const r of results) {
      if (r.status === "rejected" && !(r.reason instanceof Error)) {
        problem ??= `rejected with ${String(r.reason)}`;
      }
    }
  });
  // A well-behaved fake answers everything; a raw one hung up: either way every request settles.
  await withDeadline(settled, CASE_DEADLINE_MS, "client requests did not settle").catch((error) => {
    problem ??= (error as Error).message;
  });
  // Hang up both ends first, so neither peer waits to flush to a side that stopped reading.
  for (const end of [client, server]) {
    try {
      end.close();
    } catch { /* closed */ }
  }
  peer.close();
  fake?.close();
  await withDeadline(Promise.all([peer.closed, fake?.closed]), CASE_DEADLINE_MS, "peers did not close").catch(
    (error) => {
      problem ??= (error as Error).message;
    },
  );
  // Whatever came, the only files written are private temp files in the temp folder.
  for (const item of Deno.readDirSync(tmpDir)) {
    if (!/^[0-9a-f]{64}\.[0-9a-f]{16}\.partial$/.test(item.name)) problem ??= `stray file ${item.name}`;
    Deno.removeSync(join(tmpDir, item.name));
  }
  return problem;
}

/** Pure cases: frame decoder fed in random splits, and every schema on mutated input. */
function pureCase(rng: Rng, token: string): string | null {
  const corpus = validRequests(token);
  const pick = rng.pick(corpus);
  const maxFrame = 1 << (10 + rng.int(14));
  const bytes = rng.chance(0.5) ? damage(encodeFrame(pick.message, pick.data), rng, maxFrame) : encodeFrame(
    mutate(pick.message, rng) as Record<string, unknown> ?? {},
    pick.data,
  );
  const decoder = new FrameDecoder({ maxFrameBytes: maxFrame });
  try {
    let at = 0;
    while (at < bytes.length) {
      const step = 1 + rng.int(bytes.length);
      for (const frame of decoder.push(bytes.subarray(at, at + step))) {
        if (typeof frame.message !== "object" || frame.message === null) {
          return "decoder returned a non-object";
        }
      }
      at += step;
    }
  } catch (error) {
    if (!(error instanceof FrameError)) return `decoder threw ${String(error)}`;
  }
  const message = mutate(pick.message, rng) as Record<string, unknown>;
  const op = String(pick.message.op) as keyof typeof Requests;
  Requests[op].safeParse(message);
  const replies = validReplies(rng.int(10));
  const replyOp = rng.pick(Object.keys(replies));
  const frame = {
    message: { re: 1, ok: rng.chance(0.9), ...(mutate(replies[replyOp].body ?? {}, rng) as object) },
  };
  for (const check of [() => checkReply(replyOp, message ?? {}, frame), () => checkPush(message ?? {})]) {
    try {
      check();
    } catch (error) {
      if (!(error instanceof BadMessageError)) return `check threw ${String(error)}`;
    }
  }
  return null;
}

/** Runs the fuzz: returns what it found (it never throws for a finding). */
export async function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  const log = options.log ?? (() => {});
  const caseRng = (i: number) =>
    new Rng(Math.imul(options.seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35));
  const started = Date.now();
  // In RAM when the machine has it: downloads fsync their temp file, which is most of a case's time on disk.
  const tmp = Deno.makeTempDirSync({ prefix: "filesync-fuzz-", dir: inRam() });
  const failures: string[] = [];
  const internalErrors: string[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) =>
    internalErrors.push(
      args.map((a) => a instanceof Error ? a.stack : String(a)).join(" ").slice(
        0,
        Number(Deno.env.get("FUZZ_ERR_CHARS") ?? 1500),
      ),
    );
  const onUnhandled = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    failures.push(`unhandled rejection: ${String(event.reason).slice(0, 300)}`);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const store = await KvMetadataStore.open(join(tmp, "metadata.kv"));
  const ctx: SessionContext = {
    store,
    chunks: new DiskChunkStore(join(tmp, "chunks")),
    hub: new Hub(),
    logins: new LoginGuard(),
    log: () => {},
    loginTimeoutMs: CASE_DEADLINE_MS,
  };
  await runAdmin(store, { op: "user-add", name: "fuzz", password: "fuzz password 123" });
  const { token } = await issueToken(store, "fuzz", "dev");
  const clientDir = join(tmp, "client");
  Deno.mkdirSync(clientDir);
  const state = await ClientState.open(clientDir, { ownNamespace: "fuzz" });
  // Pushes of the own namespace and of one mounted beside it (pushes of any other are ignored).
  state.setMounts(new MountTable([{ ns: "fuzz", mount: "" }, { ns: "share:1", mount: "Team" }]));
  const tmpDir = join(tmp, "downloads");
  Deno.mkdirSync(tmpDir);
  // A file on the server for DOWNLOAD, GET, VERSIONS to find.
  {
    const [c, s] = memoryPipe();
    const session = new Session(s, "setup", ctx);
    const peer = new RpcPeer(c);
    await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "fuzz" });
    await peer.request("AUTH", { token });
    await peer.request("PUT", { hash: CHUNK_ID }, CHUNK);
    await peer.request("COMMIT", {
      changes: [{
        op: "upload",
        path: "a.txt",
        baseRev: 0,
        size: CHUNK.length,
        mtime: 1,
        hash: FILE_HASH,
        rows: { offset: 0, count: 1 },
      }],
    }, encodeRows([{ id: CHUNK_ID, size: CHUNK.length }]));
    peer.close();
    await Promise.all([peer.closed, session.peer.closed]);
  }
  // With --v8-flags=--expose-gc (deno task fuzz) heap figures are measured after a full collection.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  gc();
  const startHeap = Deno.memoryUsage().heapUsed;
  let peakHeap = startHeap;
  let cases = 0;
  const closing: Promise<void>[] = [];
  const kinds: Record<string, { cases: number; ms: number }> = {};
  let caseStart = performance.now();
  const record = (kind: string, index: number, problem: string | null) => {
    cases++;
    const k = kinds[kind] ??= { cases: 0, ms: 0 };
    k.cases++;
    k.ms += performance.now() - caseStart;
    caseStart = performance.now();
    if (problem !== null) failures.push(`${kind} case ${index}: ${problem}`);
  };
  try {
    const first = options.only ?? 0;
    const end = options.only !== undefined ? options.only + 1 : options.cases;
    for (let i = first; i < end; i++) {
      if (failures.length >= 20) break;
      const rng = caseRng(i);
      const kind = i % 10 < 6 ? "pure" : i % 10 < 8 ? "client" : "server";
      caseStart = performance.now();
      if (kind === "pure") record(kind, i, pureCase(rng, token));
      else if (kind === "client") {
        // Hostile client against a real server session.
        const [c, s] = memoryPipe();
        const session = new Session(s, "fuzz:1", ctx);
        const { frames, damaged } = hostileClientBytes(rng, token, 16 * 1024 * 1024);
        const pingId = 1_000_000;
        const work = (async () => {
          // Writes fail once the session has closed the connection (as it should for a bad frame).
          const reading = readUntil(c, pingId, 64 * 1024 * 1024);
          try {
            for (const frame of frames) await writeAll(c, frame);
            await writeAll(c, encodeFrame({ op: "PING", id: pingId }));
          } catch { /* closed by the server */ }
          return await reading;
        })();
        let problem: string | null = null;
        // Whole frames (valid or not) are all answered, the PING too; after damaged bytes (a frame cut short
        // may still wait for its body) the case requires only that hanging up ends the session.
        if (!damaged) {
          try {
            const { internal } = await withDeadline(work, CASE_DEADLINE_MS, "server session did not answer");
            if (internal) problem = "server replied with an internal error";
          } catch (error) {
            problem = String((error as Error)?.message ?? error);
          }
        } else work.catch(() => {});
        c.close();
        record(kind, i, problem);
        // Hanging up must end the session in bounded time; these are awaited in groups, so a session that is
        // still flushing to a peer that left does not hold up the next cases.
        closing.push(
          withDeadline(session.peer.closed, CASE_DEADLINE_MS, "session did not close after hang-up").then(
            () => {},
            (e) => void failures.push(`client case ${i}: ${(e as Error).message}`),
          ),
        );
        if (closing.length >= 64) await Promise.all(closing.splice(0));
      } else {
        const [c, s] = memoryPipe();
        record(kind, i, await hostileServerCase(rng, c, s, state, tmpDir));
        if (i % 1000 === 8) state.resetRemote(); // the mirror holds what hostile pushes named: keep it small
      }
      if (internalErrors.length > 0) failures.push(`case ${i}: ${internalErrors.splice(0).join("; ")}`);
      if (i % 500 === 0) {
        const heap = Deno.memoryUsage().heapUsed;
        peakHeap = Math.max(peakHeap, heap);
        if (i % 20_000 === 0 && i > 0) {
          log(`${i} cases, ${failures.length} failures, heap ${Math.round(heap / 1e6)} MB`);
        }
      }
    }
    if ((options.tlsCases ?? 0) > 0) {
      await tlsCases(options.tlsCases!, (i) => caseRng(options.cases + i), tmp, state, tmpDir, record);
    }
    if (internalErrors.length > 0) failures.push(`tls: ${internalErrors.splice(0).join("; ")}`);
  } finally {
    console.error = consoleError;
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    await state.close().catch(() => {});
    store.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  gc();
  const endHeap = Deno.memoryUsage().heapUsed;
  peakHeap = Math.max(peakHeap, endHeap);
  if (endHeap - startHeap > MAX_HEAP_GROWTH_BYTES) {
    failures.push(`heap grew by ${Math.round((endHeap - startHeap) / 1e6)} MB over the run`);
  }
  return {
    cases,
    kinds,
    failures,
    peakHeapBytes: peakHeap,
    heapGrowthBytes: endHeap - startHeap,
    ms: Date.now() - started,
  };
}

/** Cases over real TLS: a hostile client against a real listening server, a hostile TLS server against the client. */
async function tlsCases(
  count: number,
  caseRng: (i: number) => Rng,
  tmp: string,
  state: ClientState,
  tmpDir: string,
  record: (kind: string, index: number, problem: string | null) => void,
): Promise<void> {
  const server = await startServer({
    dataDir: join(tmp, "server"),
    port: 0,
    host: "127.0.0.1",
    log: () => {},
  });
  try {
    await runAdmin(server.store, { op: "user-add", name: "fuzz", password: "fuzz password 123" });
    const { token } = await issueToken(server.store, "fuzz", "dev");
    const ca = Deno.readTextFileSync(join(tmp, "server", "certs", "ca.pem"));
    const cert = await ensureServerCertificate(join(tmp, "fake"));
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
      alpnProtocols: [ALPN],
    });
    const fakeCa = Deno.readTextFileSync(cert.caPath);
    try {
      for (let i = 0; i < count; i++) {
        const rng = caseRng(i);
        if (i % 2 === 0) {
          const conn = await Deno.connectTls({
            hostname: "127.0.0.1",
            port: server.port,
            caCerts: [ca],
            alpnProtocols: [ALPN],
          });
          let problem: string | null = null;
          try {
            const { frames, damaged } = hostileClientBytes(rng, token, 16 * 1024 * 1024);
            const work = (async () => {
              const reading = readUntil(conn, 1_000_000, 64 * 1024 * 1024);
              try {
                for (const frame of frames) await writeAll(conn, frame);
                await writeAll(conn, encodeFrame({ op: "PING", id: 1_000_000 }));
              } catch { /* closed by the server */ }
              return await reading;
            })();
            if (!damaged) {
              const what = frames.map((f) => new TextDecoder().decode(f.subarray(5, 125))).join(" | ");
              const { internal } = await withDeadline(
                work,
                CASE_DEADLINE_MS,
                `TLS server did not answer ${what}`,
              );
              if (internal) problem = "server replied with an internal error";
            } else work.catch(() => {});
          } catch (error) {
            if (
              !(error instanceof Deno.errors.ConnectionReset) && !(error instanceof Deno.errors.BrokenPipe)
            ) {
              problem = (error as Error).message;
            }
          } finally {
            try {
              conn.close();
            } catch { /* closed */ }
          }
          record("tls-client", i, problem);
        } else {
          // The client's reply and push handling over real TLS against a hostile TLS server.
          const accepted = listener.accept();
          const clientConn = await Deno.connectTls({
            hostname: "127.0.0.1",
            port: listener.addr.port,
            caCerts: [fakeCa],
            alpnProtocols: [ALPN],
          });
          const serverConn = await accepted;
          await Promise.all([clientConn.handshake(), serverConn.handshake()]);
          record("tls-server", i, await hostileServerCase(rng, clientConn, serverConn, state, tmpDir));
        }
      }
    } finally {
      listener.close();
    }
    // The server is still serving after everything.
    const check = await openConnection({ hostname: "127.0.0.1", port: server.port, caPem: ca });
    await check.request("AUTH", { token });
    await check.request("PING");
    check.close();
    await check.closed;
  } finally {
    await server.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cases: { type: "string", default: "1000000" },
      seed: { type: "string" },
      tls: { type: "string" },
      only: { type: "string" },
    },
  });
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  const cases = Number(values.cases);
  const tls = Number(values.tls ?? Math.min(1000, Math.ceil(cases / 1000)));
  console.log(`fuzz: seed ${seed}, ${cases} cases in memory, ${tls} over TLS`);
  const only = values.only !== undefined ? Number(values.only) : undefined;
  const result = await runFuzz({
    cases,
    tlsCases: only === undefined ? tls : 0,
    seed,
    only,
    log: (line) => console.log(line),
  });
  console.log(
    `fuzz: ${result.cases} cases in ${
      (result.ms / 1000).toFixed(1)
    } s, ${result.failures.length} failures, ` +
      `peak heap ${Math.round(result.peakHeapBytes / 1e6)} MB, heap growth ${
        Math.round(result.heapGrowthBytes / 1e6)
      } MB`,
  );
  for (const [kind, { cases, ms }] of Object.entries(result.kinds)) {
    console.log(`fuzz: ${kind}: ${cases} cases, ${(ms / cases).toFixed(2)} ms per case`);
  }
  for (const failure of result.failures) console.log(`FAIL ${failure}`);
  Deno.exit(result.failures.length === 0 ? 0 : 1);
}
