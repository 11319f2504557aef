// Wire schema of what the server sends: every reply and push, checked by the client on arrival with zod.
import { z } from "zod";
import type { Frame } from "./frame.ts";
import {
  FETCH_INLINE_BYTES,
  MANIFEST_ROW_BYTES,
  MAX_FETCH_BYTES,
  MAX_FETCH_ITEMS,
  MAX_HAVE,
  NamespaceId,
} from "./messages.ts";
import { validatePath } from "./paths.ts";

/** Largest chunk a server sends or accepts, in bytes (the server refuses larger PUTs). */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Latest modification time a JavaScript Date can hold (ms since the epoch). */
const MAX_TIME_MS = 8_640_000_000_000_000;
/** Longest error text kept from the server; the rest is cut. */
const MAX_ERROR_CHARS = 1000;
/** Most entries in one journal or snapshot push (the server sends pages of 1000). */
export const MAX_PUSH_ENTRIES = 10_000;

// Objects are loose: fields a schema does not list pass through unchecked, so a newer server (or a merge that
// adds a field) keeps working; whoever starts reading a new field adds it here.
const path = z.string().superRefine((value, ctx) => {
  try {
    validatePath(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});
const hash = z.string().regex(/^[0-9a-f]{64}$/, "invalid hash");
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const time = z.number().int().min(0).max(MAX_TIME_MS);
const kind = z.enum(["file", "dir"]);
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const text = (max: number) =>
  z.string().max(max).refine((s) => !CONTROL.test(s), { message: "control characters are not allowed" });
const device = text(200);

/** A path's state as the server reports it: a live file (with its content hash), a folder, or a deletion. */
export const WireEntrySchema = z.looseObject({
  path,
  kind,
  hash: z.union([hash, z.literal("")]),
  size: uint,
  mtime: time,
  rev: uint,
  device,
  deleted: z.boolean().optional(),
  tag: text(64).optional(),
  restored: text(64).optional(),
}).refine((e) => e.deleted === true || e.kind === "dir" || e.hash !== "", {
  message: "a file entry needs a content hash",
  path: ["hash"],
});

const entries = z.array(WireEntrySchema).max(MAX_PUSH_ENTRIES);

/** Most namespaces one session serves. */
export const MAX_NAMESPACES = 10_000;

/** A mount: "" (the folder root) or one valid path segment (a top-level folder). */
const mount = z.union([
  z.literal(""),
  path.refine((p) => !p.includes("/"), { message: "not a top-level folder" }),
]);

/** One namespace of a session (see `WireNamespace`). */
const wireNamespace = z.looseObject({
  ns: NamespaceId,
  role: z.enum(["owner", "write", "read"]),
  name: text(200),
  mount,
  path: path.optional(),
  owner: text(64).optional(),
});
/** One grant (see `WireShare`). */
const wireShare = z.looseObject({
  ns: NamespaceId,
  path,
  owner: text(64),
  user: text(64),
  access: z.enum(["read", "write"]),
  mount: path.refine((p) => !p.includes("/"), { message: "not a top-level name" }),
});

/** What LOGIN and AUTH list; absent from servers before namespaces (the own namespace alone, at the root). */
const namespaces = z.array(wireNamespace).max(MAX_NAMESPACES).optional();

/** A lock as the server reports it (see `WireLock`). */
const wireLock = z.looseObject({
  path,
  user: text(64),
  deviceId: text(64),
  device,
  expires: time,
  remainingMs: uint,
  leaseMs: uint,
  mine: z.boolean(),
});
const locks = z.array(wireLock).max(MAX_PUSH_ENTRIES);

/** Pushes (messages without an id) by their `push` name. */
export const Pushes = {
  /** `ns`: the namespace whose journal they are (absent from servers before namespaces: the own one). */
  events: z.looseObject({
    push: z.literal("events"),
    events: entries,
    ns: NamespaceId.optional(),
    /** The part of the namespace the MONITOR follows (a share's path), as it asked. */
    path: path.optional(),
  }),
  snapshot: z.looseObject({
    push: z.literal("snapshot"),
    ns: NamespaceId.optional(),
    path: path.optional(),
    entries,
    first: z.boolean(),
    last: z.boolean(),
    cursor: uint,
    /** Tag of the journal entry at `cursor` (see MONITOR's `tag`). */
    tag: text(64).optional(),
  }),
  error: z.looseObject({
    push: z.literal("error"),
    code: text(64).optional(),
    error: z.string(),
    /** Why, for some codes: `auth_token` with "revoked" says this device was revoked (`DEVICE_REVOKED`). */
    reason: text(64).optional(),
  }),
  /**
   * Every live lock of the namespace, sent to monitoring devices whenever a lock is taken, renewed, released
   * or expires; `change` says what happened to which path. (LOCKS gives the same list on request.)
   */
  locks: z.looseObject({
    push: z.literal("locks"),
    /** The namespace whose locks they are (absent from servers before namespaces: the own one). */
    ns: NamespaceId.optional(),
    /** The part of the namespace the MONITOR follows (a share's path). */
    path: path.optional(),
    locks,
    change: z.looseObject({
      path,
      what: z.enum(["taken", "renewed", "released", "forced", "expired"]),
      by: device.optional(),
    }).optional(),
  }),
  /**
   * The namespaces the session serves changed: a share arrived, changed access or went (`change` says which,
   * `share` the grant; `access` absent when it went). The list is the new one, as AUTH would give it.
   */
  namespaces: z.looseObject({
    push: z.literal("namespaces"),
    namespaces: z.array(wireNamespace).max(MAX_NAMESPACES),
    change: z.enum(["new", "access", "gone"]),
    share: wireShare,
  }),
} as const;

/** A push that passed {@linkcode checkPush}. */
export type Push =
  | z.infer<typeof Pushes.events>
  | z.infer<typeof Pushes.snapshot>
  | z.infer<typeof Pushes.error>
  | z.infer<typeof Pushes.locks>
  | z.infer<typeof Pushes.namespaces>;

const changeResult = z.union([
  z.looseObject({ ok: z.literal(true), entries: z.array(WireEntrySchema).max(MAX_PUSH_ENTRIES) }),
  z.looseObject({
    ok: z.literal(false),
    code: text(64),
    error: z.string(),
    current: WireEntrySchema.nullable().optional(),
  }),
]);

const version = z.looseObject({
  id: text(64),
  time,
  size: uint,
  mtime: time,
  hash,
  device,
  current: z.boolean().optional(),
});

const trashItem = z.looseObject({
  path,
  kind,
  deletedAt: time,
  device,
  size: uint,
  version: text(64),
});

const wireDevice = z.looseObject({
  deviceId: text(64),
  device,
  created: time,
  expires: time,
  lastSeen: time.optional(),
  revoked: time.optional(),
  current: z.boolean().optional(),
});

/** Reply schemas (the fields besides `re` and `ok`) by the op of the request they answer. */
export const Replies = {
  HELLO: z.looseObject({ version: z.number().int(), server: text(200).optional() }),
  LOGIN: z.looseObject({
    token: z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, "invalid token"),
    deviceId: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, "invalid device id"),
    user: text(64).optional(),
    expires: time.optional(),
    namespaces,
  }),
  AUTH: z.looseObject({
    user: text(64).optional(),
    deviceId: text(64).optional(),
    device: device.optional(),
    namespaces,
  }),
  PING: z.looseObject({}),
  CHANGES: z.looseObject({ events: entries, latest: uint }),
  MONITOR: z.looseObject({ cursor: uint }),
  HAVE: z.looseObject({ missing: z.array(hash).max(MAX_HAVE) }),
  PUT: z.looseObject({}),
  GET: z.looseObject({}),
  DOWNLOAD: z.looseObject({
    entry: WireEntrySchema,
    inline: z.literal(1).optional(),
    from: z.looseObject({ hash, head: uint, tail: uint }).optional(),
  }),
  COMMIT: z.looseObject({ results: z.array(changeResult) }),
  VERSIONS: z.looseObject({ versions: z.array(version).max(100_000) }),
  TRASH: z.looseObject({ items: z.array(trashItem).max(1_000_000) }),
  RESTORE: z.looseObject({
    path,
    kind,
    version: text(64),
    entries,
    skipped: z.array(z.looseObject({ path, code: text(64), error: z.string() })),
  }),
  DEVICES: z.looseObject({ devices: z.array(wireDevice).max(100_000) }),
  LOCK: z.looseObject({ lock: wireLock, renewed: z.boolean() }),
  UNLOCK: z.looseObject({ released: wireLock }),
  LOCKS: z.looseObject({ locks }),
  SHARE: z.looseObject({ share: wireShare, changed: z.enum(["new", "access", "same"]) }),
  UNSHARE: z.looseObject({ removed: z.array(wireShare).max(MAX_NAMESPACES) }),
  SHARES: z.looseObject({
    mine: z.array(wireShare).max(MAX_NAMESPACES),
    withMe: z.array(wireShare).max(MAX_NAMESPACES),
  }),
  /** Per item asked, in order: `entry` and `at` (its bytes are data[at, at + entry.size)), or a `code`. */
  FETCH: z.looseObject({
    items: z.array(z.looseObject({
      path,
      ns: NamespaceId.optional(),
      entry: WireEntrySchema.optional(),
      at: uint.optional(),
      code: z.enum(["not_found", "forbidden", "stale", "not_inline"]).optional(),
    })).max(MAX_FETCH_ITEMS),
  }),
} as const;

/** Thrown for a reply or push that breaks its schema; the message names the op and the field. */
export class BadMessageError extends Error {
  /** Always "BadMessageError". */
  override name = "BadMessageError";
}

function firstIssue(what: string, error: z.ZodError): BadMessageError {
  const issue = error.issues[0];
  const where = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  return new BadMessageError(`Invalid ${what}: ${where}${issue.message}`);
}

/** `schema.safeParse`, with a value nested too deeply for the stack (RangeError) as a BadMessageError. */
function parseSafely(schema: z.ZodType, value: unknown, what: string) {
  try {
    return schema.safeParse(value);
  } catch (error) {
    if (error instanceof RangeError) throw new BadMessageError(`Invalid ${what}: nested too deeply`);
    throw error;
  }
}

/** Replaces control characters (terminal escapes) and cuts long text, for logging what the server said. */
export function safeText(value: unknown): string {
  const s = String(value).toWellFormed();
  // deno-lint-ignore no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, "?");
  return clean.length > MAX_ERROR_CHARS ? `${clean.slice(0, MAX_ERROR_CHARS)}…` : clean;
}

/**
 * Checks a push against {@linkcode Pushes} and returns it typed (fields the schema does not know are kept,
 * unchecked: a newer server may send more).
 *
 * @example
 * ```ts
 * const push = checkPush({ push: "events", events: [] }); // { push: "events", events: [] }
 * checkPush({ push: "events", events: [{ path: "../x" }] }); // throws BadMessageError
 * ```
 *
 * @throws {BadMessageError} if the push is unknown or breaks its schema.
 */
export function checkPush(message: Record<string, unknown>): Push {
  const name = message.push;
  if (typeof name !== "string" || !Object.hasOwn(Pushes, name)) {
    throw new BadMessageError(
      `Unknown push ${typeof name === "string" ? JSON.stringify(safeText(name)) : typeof name}`,
    );
  }
  const result = parseSafely(Pushes[name as keyof typeof Pushes], message, `${name} push`);
  if (!result.success) throw firstIssue(`${name} push`, result.error);
  const push = result.data as Push;
  if (push.push === "error") push.error = safeText(push.error);
  return push;
}

/**
 * Checks the reply to a request of `op` with body `request` and returns it with its message parsed (fields the
 * schema does not know are kept). Beyond the fields' schemas it checks what ties a reply to its request and its
 * bytes: a
 * DOWNLOAD's entry is the file asked for and its data is whole manifest rows (after one row and the chunk when
 * `inline`), each of 1 to {@linkcode MAX_CHUNK_BYTES} bytes; a GET carries a chunk of at most that size; a
 * COMMIT has one result per change; HAVE names only hashes asked about; a FETCH answers each item asked, in order,
 * with the entry of the file at the rev asked and its bytes laid end to end in the data, or a code. Error replies (`ok: false`) keep their
 * fields, with code and text made safe to log.
 *
 * @example
 * ```ts
 * checkReply("MONITOR", { since: 0 }, { message: { re: 1, ok: true, cursor: 5 } }); // message.cursor === 5
 * checkReply("MONITOR", { since: 0 }, { message: { re: 1, ok: true, cursor: -1 } }); // throws BadMessageError
 * ```
 *
 * @throws {BadMessageError} if the reply breaks its schema.
 */
export function checkReply(op: string, request: Record<string, unknown>, frame: Frame): Frame {
  const message = frame.message;
  if (message.ok === false) {
    // Only strings are turned into text: String() of a value nested thousands deep overflows the stack.
    const code = typeof message.code === "string" && /^[a-z_]{1,64}$/.test(message.code)
      ? message.code
      : "error";
    const error = typeof message.error === "string" ? safeText(message.error) : "request failed";
    return { ...frame, message: { ...message, code, error } };
  }
  if (!Object.hasOwn(Replies, op)) throw new BadMessageError(`Reply to unknown op ${JSON.stringify(op)}`);
  const result = parseSafely(Replies[op as keyof typeof Replies], message, `${op} reply`);
  if (!result.success) throw firstIssue(`${op} reply`, result.error);
  const body = result.data as Record<string, unknown>;
  const problem = replyProblem(op, request, body, frame.data);
  if (problem !== null) throw new BadMessageError(`Invalid ${op} reply: ${problem}`);
  return { message: { ...body, re: message.re, ok: true }, data: frame.data };
}

/** What ties a (schema-valid) reply to its request and data, or null when all holds. */
function replyProblem(
  op: string,
  request: Record<string, unknown>,
  body: Record<string, unknown>,
  data: Uint8Array | undefined,
): string | null {
  switch (op) {
    case "DOWNLOAD": {
      const reply = body as z.infer<typeof Replies.DOWNLOAD>;
      if (reply.entry.path !== request.path) return "entry.path: not the file asked for";
      if (reply.entry.kind !== "file" || reply.entry.deleted) return "entry: not a file";
      if (reply.from && reply.from.hash !== request.base) return "from.hash: not the base asked for";
      if (reply.inline && reply.from) return "inline: not allowed with from";
      const bytes = data ?? new Uint8Array();
      const rowBytes = reply.inline ? MANIFEST_ROW_BYTES : bytes.length;
      if (reply.inline && bytes.length < MANIFEST_ROW_BYTES) return "data: shorter than one manifest row";
      if (rowBytes % MANIFEST_ROW_BYTES !== 0) return "data: not a whole number of manifest rows";
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let total = 0;
      for (let at = 32; at < rowBytes; at += MANIFEST_ROW_BYTES) {
        const size = view.getUint32(at);
        if (size < 1 || size > MAX_CHUNK_BYTES) return `data: chunk size ${size} is out of range`;
        total += size;
      }
      if (reply.inline && bytes.length - MANIFEST_ROW_BYTES !== total) {
        return "data: inline chunk does not match its row";
      }
      if (!reply.from && total !== reply.entry.size) {
        return `data: chunks hold ${total} bytes, the entry says ${reply.entry.size}`;
      }
      return null;
    }
    case "FETCH":
      return fetchProblem(request, body as z.infer<typeof Replies.FETCH>, data);
    case "GET":
      if (!data) return "no chunk data";
      if (data.length > MAX_CHUNK_BYTES) return `chunk of ${data.length} bytes is too large`;
      return null;
    case "COMMIT": {
      const asked = Array.isArray(request.changes) ? request.changes.length : -1;
      const got = (body.results as unknown[]).length;
      return got === asked ? null : `results: ${got} results for ${asked} changes`;
    }
    case "HAVE": {
      const asked = new Set(Array.isArray(request.hashes) ? request.hashes : []);
      const stray = (body.missing as string[]).find((h) => !asked.has(h));
      return stray === undefined ? null : `missing: ${stray.slice(0, 12)} was not asked about`;
    }
    case "LOCK":
    case "UNLOCK": {
      const lock = (op === "LOCK" ? body.lock : body.released) as { path: string };
      return lock.path === request.path
        ? null
        : `${op === "LOCK" ? "lock" : "released"}.path: not the file asked for`;
    }
    default:
      return null;
  }
}

/** What ties a FETCH reply to the items asked and to its data, or null when all holds (hashes: the caller). */
function fetchProblem(
  request: Record<string, unknown>,
  reply: z.infer<typeof Replies.FETCH>,
  data: Uint8Array | undefined,
): string | null {
  const asked = Array.isArray(request.items)
    ? request.items as { path: string; ns?: string; rev: number }[]
    : [];
  if (reply.items.length !== asked.length) {
    return `items: ${reply.items.length} items for ${asked.length} asked`;
  }
  let offset = 0;
  for (const [i, item] of reply.items.entries()) {
    const want = asked[i] as { path?: unknown; ns?: unknown; rev?: unknown } | null;
    if (typeof want !== "object" || want === null || item.path !== want.path || item.ns !== want.ns) {
      return `items.${i}: not the file asked for`;
    }
    if (item.code !== undefined) {
      if (item.entry !== undefined || item.at !== undefined) return `items.${i}: a code and an entry`;
      continue;
    }
    const entry = item.entry;
    if (!entry || item.at === undefined) return `items.${i}: neither an entry nor a code`;
    if (entry.path !== want.path) return `items.${i}.entry.path: not the file asked for`;
    if (entry.kind !== "file" || entry.deleted) return `items.${i}.entry: not a file`;
    if (entry.rev !== want.rev) return `items.${i}.entry.rev: not the rev asked for`;
    if (entry.size > FETCH_INLINE_BYTES) {
      return `items.${i}.entry.size: ${entry.size} is too large to be inline`;
    }
    if (item.at !== offset) return `items.${i}.at: ${item.at}, expected ${offset}`;
    offset += entry.size;
  }
  if (offset > MAX_FETCH_BYTES) return `data: ${offset} bytes is more than a FETCH carries`;
  const length = data?.length ?? 0;
  return length === offset ? null : `data: ${length} bytes, the items hold ${offset}`;
}
