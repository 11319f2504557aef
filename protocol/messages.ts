// Wire schema: every request both sides exchange, validated at the boundary with zod.
import { z } from "zod";
import { isValidPath } from "./paths.ts";
import { MAX_LEASE_MINUTES, MIN_LEASE_MINUTES } from "./locks.ts";

/** Protocol version carried by HELLO; a mismatch is refused with a clear error. */
export const PROTOCOL_VERSION = 1;
/** TLS application protocol name. */
export const ALPN = "filesync/1";
/** Most changes in one COMMIT. */
export const MAX_BATCH = 1000;
/** Most hashes in one HAVE. */
export const MAX_HAVE = 4096;
/** Most files in one FETCH. */
export const MAX_FETCH_ITEMS = 256;
/** Largest file FETCH sends inline (it must also be one chunk at most). */
export const FETCH_INLINE_BYTES = 128 * 1024;
/** Most file bytes in one FETCH reply (within the server's reply budget of one largest chunk). */
export const MAX_FETCH_BYTES = 4 * 1024 * 1024;
/**
 * Why a FETCH item carries no bytes: "not_found" (no such file now), "forbidden" (the caller may not read it),
 * "stale" (the file is at another rev than asked: the journal will tell), "not_inline" (too large, more than one
 * chunk, or past the reply's byte limit: use DOWNLOAD).
 */
export type FetchItemCode = "not_found" | "forbidden" | "stale" | "not_inline";
/** Bytes of one manifest row on the wire: 32-byte SHA-256 then 4-byte big-endian size. */
export const MANIFEST_ROW_BYTES = 36;

const path = z.string().refine(isValidPath, { message: "invalid path" });
const hash = z.string().regex(/^[0-9a-f]{64}$/, "invalid hash");
const rev = z.number().int().min(0);
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const kind = z.enum(["file", "dir"]);

/** Longest namespace id. */
export const MAX_NAMESPACE_ID = 200;
/**
 * A namespace id: a user's own namespace is the user's name; a share's holds a ":" (never a user name). Ops that
 * act on files or the journal name theirs in `ns`; a request without `ns` acts on the caller's own namespace, so
 * clients from before namespaces keep working unchanged.
 */
export const NamespaceId = z.string().min(1).max(MAX_NAMESPACE_ID).regex(
  /^[A-Za-z0-9._:-]+$/,
  "invalid namespace id",
);
const ns = NamespaceId.optional();

/** An upload change: commit a file version whose chunk rows travel in the COMMIT's data. */
export const UploadChange = z.object({
  op: z.literal("upload"),
  path,
  baseRev: rev,
  size: uint,
  mtime: uint,
  hash,
  /** Rows [offset, offset+count) of the COMMIT data: the whole chunk list, or the inserted part when `from` is set. */
  rows: z.object({ offset: uint, count: uint }),
  /** Delta against the version `hash` of the same path: keep `head` rows from its start and `tail` from its end. */
  from: z.object({ hash, head: uint, tail: uint }).optional(),
});
/** A folder creation. */
export const MkdirChange = z.object({ op: z.literal("mkdir"), path, baseRev: rev });
/** A deletion of a file or an empty folder. */
export const DeleteChange = z.object({ op: z.literal("delete"), path, baseRev: rev, kind });
/** A rename or move of a file without content. */
export const MoveChange = z.object({ op: z.literal("move"), from: path, path, baseRev: rev });
/** Any change in a COMMIT. */
export const Change = z.discriminatedUnion("op", [UploadChange, MkdirChange, DeleteChange, MoveChange]);
/** Type of {@linkcode Change}. */
export type Change = z.infer<typeof Change>;
/** Type of {@linkcode UploadChange}. */
export type UploadChange = z.infer<typeof UploadChange>;

/** Request schemas by op. */
export const Requests = {
  HELLO: z.object({ version: z.number().int(), agent: z.string().max(200) }),
  LOGIN: z.object({
    user: z.string().min(1).max(64),
    password: z.string().min(1).max(1024),
    device: z.string().min(1).max(64),
  }),
  AUTH: z.object({ token: z.string().min(1).max(200) }),
  PING: z.object({}),
  CHANGES: z.object({
    since: rev,
    limit: z.number().int().min(1).max(5000).optional(),
    ns,
    /** Only entries at or under this path (a share's path). */
    path: path.optional(),
  }),
  /**
   * Subscribe to the journal from `since`. `epoch` (from HELLO) and `tag` (the `tag` of the journal entry at
   * `since` that the device last saw) let the server tell that this device's cursor belongs to another history
   * of the journal (a restored backup, a new data folder): it then refuses with {@linkcode RESYNC_CODE}.
   */
  MONITOR: z.object({
    since: rev,
    epoch: z.string().max(64).optional(),
    tag: z.string().max(64).optional(),
    ns,
    /** The part of the namespace to follow (a share's path): only entries at or under it are sent. */
    path: path.optional(),
  }),
  /** HAVE and GET take no `ns`: they answer for the chunks of every namespace the caller can read. */
  HAVE: z.object({ hashes: z.array(hash).max(MAX_HAVE) }),
  /** `ns`: the namespace the chunk is uploaded for (its pending reference is kept there; write access needed). */
  PUT: z.object({ hash, ns }),
  GET: z.object({ hash }),
  /** `base`: a version of the file the client holds; the reply then carries only the rows that differ. */
  DOWNLOAD: z.object({ path, base: hash.optional(), ns }),
  COMMIT: z.object({ changes: z.array(Change).min(1).max(MAX_BATCH), ns }),
  /** The kept versions of a file (current one first when it exists), newest first. */
  VERSIONS: z.object({ path, ns }),
  /** What was deleted and is still kept (newest deletion first). */
  TRASH: z.object({ ns }),
  /**
   * Brings back a kept version as a new commit (so every device receives it): `version` is an id from
   * VERSIONS (default: the newest kept one that is not current); `as` restores it under another path. For a
   * deleted folder, the folder and everything that was in it when it was deleted come back.
   */
  RESTORE: z.object({ path, version: z.string().max(64).optional(), as: path.optional(), ns }),
  /** The caller's user's devices (see {@linkcode WireDevice}); the reply marks the calling device `current`. */
  DEVICES: z.object({}),
  /**
   * Takes a lease on a file for `minutes` (default 30), or renews the caller's own from now (for `minutes`, or
   * the lease's length). Refused with "locked" while another device holds it.
   */
  LOCK: z.object({
    path,
    minutes: z.number().min(MIN_LEASE_MINUTES).max(MAX_LEASE_MINUTES).optional(),
    /** Only renew: refused with "not_locked" unless the caller holds a live lock on the path. */
    renew: z.boolean().optional(),
    ns,
  }),
  /** Releases the caller's lock; `force` releases another device's (the namespace's owner only). */
  UNLOCK: z.object({ path, force: z.boolean().optional(), ns }),
  /** The live locks of a namespace (default: the caller's own). */
  LOCKS: z.object({
    ns,
    /** Only the locks at or under this path (a share's path). */ path: path.optional(),
  }),
  /**
   * Grants `with` read or write access to `path` (a file or folder) of the caller's own namespace (`ns`, which
   * only its owner may share). Sent again for the same path and user, it changes the access.
   */
  SHARE: z.object({ ns, path, with: z.string().min(1).max(64), access: z.enum(["read", "write"]) }),
  /** Takes back what `path` of `ns` grants `with` (absent: every user it is shared with). */
  UNSHARE: z.object({ ns, path, with: z.string().min(1).max(64).optional() }),
  /** What the caller shares (with whom, which access) and what is shared with the caller. */
  SHARES: z.object({}),
  /**
   * Small files in one round trip: each item is a file the caller expects at `rev` (its namespace `ns` and
   * path there). The reply answers item by item, in order: the entry and its bytes for a file of at most one
   * chunk and {@linkcode FETCH_INLINE_BYTES}, else a code (see {@linkcode FetchItemCode}); the caller downloads
   * what is "not_inline" with DOWNLOAD.
   */
  FETCH: z.object({
    items: z.array(z.object({ path, ns, rev })).min(1).max(MAX_FETCH_ITEMS),
  }),
} as const;
/** Names of every op. */
export type Op = keyof typeof Requests;

/** Error code of an op naming a namespace the caller may not see, or may not write to. */
export const FORBIDDEN_CODE = "forbidden";

/** A caller's right in a namespace. */
export type WireRole = "owner" | "write" | "read";

/**
 * One namespace a session serves, as LOGIN and AUTH list them: its id, the caller's role, a display name and
 * where devices show it (`mount`: "" for the folder root, the user's own namespace; else a top-level folder).
 */
export interface WireNamespace {
  ns: string;
  role: WireRole;
  name: string;
  mount: string;
  /** For a share: the shared path in the owner's namespace (the view shows only what is at or under it). */
  path?: string;
  /** For a share: the user who owns the namespace. */
  owner?: string;
}

/** Error code of a SHARE or UNSHARE the rules refuse (unknown user, yourself, overlapping shares, nothing shared). */
export const SHARE_REFUSED_CODE = "share_refused";

/** One grant, as SHARES lists it: what is shared (`ns`, `path`), by `owner`, with `user`, which access. */
export interface WireShare {
  ns: string;
  path: string;
  owner: string;
  user: string;
  access: "read" | "write";
  /** Where the grantee's devices show it (a top-level name). */
  mount: string;
}

/** A path's state as the server reports it (in events and replies). Deleted paths have `deleted: true`. */
export interface WireEntry {
  path: string;
  kind: "file" | "dir";
  hash: string;
  size: number;
  mtime: number;
  rev: number;
  device: string;
  deleted?: boolean;
  /** Journal entries only: random id of the commit that wrote it (see MONITOR's `tag`). */
  tag?: string;
  /** Journal entries only: written by a RESTORE, which brought back this version (its id, as VERSIONS gives). */
  restored?: string;
}

/**
 * Error code of a MONITOR refused because the device's cursor does not belong to the server's journal; the
 * reply's `reason` says why: "behind" (the server's journal is shorter than the cursor: restored from a
 * backup), "diverged" (same length, another history: `tag` differs), "epoch" (another journal altogether),
 * "expired" (the journal was compacted past the cursor). For "expired" the device's base is still valid and it
 * catches up from a snapshot; for the others the server may lack what the device has, so the device re-uploads.
 */
export const RESYNC_CODE = "resync";
/** Why a MONITOR was refused with {@linkcode RESYNC_CODE}. */
export type ResyncReason = "behind" | "diverged" | "epoch" | "expired";

/** One kept version of a file, as VERSIONS reports it. */
export interface WireVersion {
  /** Opaque id to pass to RESTORE. */
  id: string;
  /** When the version was committed (ms since the epoch). */
  time: number;
  size: number;
  mtime: number;
  hash: string;
  /** Device that committed it. */
  device: string;
  /** True for the file's current version. */
  current?: boolean;
}

/** One deleted path still kept, as TRASH reports it. */
export interface WireTrashItem {
  path: string;
  kind: "file" | "dir";
  /** When it was deleted (ms since the epoch). */
  deletedAt: number;
  /** Device that deleted it. */
  device: string;
  /** Size of the deleted file (0 for folders). */
  size: number;
  /** Id of the version that was deleted (for RESTORE). */
  version: string;
}

/**
 * The `reason` of an `auth_token` error (a refused AUTH, or the push that closes a session) when the device's
 * token was revoked (`filesync user revoke`): the device must not log in again by itself, only when a person
 * gives the password.
 */
export const DEVICE_REVOKED = "revoked";

/** One device of a user, as DEVICES (and `filesync user devices`) report it; one per login. */
export interface WireDevice {
  /** Random id given at login. */
  deviceId: string;
  /** The device's name (`--device`). */
  device: string;
  /** When it logged in (ms since the epoch). */
  created: number;
  /** When its token expires unless used again. */
  expires: number;
  /** When it last connected (absent: not since it logged in). */
  lastSeen?: number;
  /** When it was revoked (absent: not revoked). */
  revoked?: number;
  /** True for the device that asked (DEVICES only). */
  current?: boolean;
}

/** One manifest row: a chunk id (its SHA-256, lowercase hex) and its size in bytes. */
export interface ChunkRow {
  id: string;
  size: number;
}

/** Lengths of the common prefix and suffix of two chunk lists (not overlapping). */
export function commonEnds(
  a: readonly { id: string }[],
  b: readonly { id: string }[],
): { head: number; tail: number } {
  const limit = Math.min(a.length, b.length);
  let head = 0;
  while (head < limit && a[head].id === b[head].id) head++;
  let tail = 0;
  while (tail < limit - head && a[a.length - 1 - tail].id === b[b.length - 1 - tail].id) tail++;
  return { head, tail };
}

/** Result of one change of a COMMIT. */
export type ChangeResult =
  | { ok: true; entries: WireEntry[] }
  | {
    ok: false;
    code: string;
    error: string;
    current?: WireEntry | null;
    /** For a change refused with code "locked": who holds the lock. */
    holder?: { user: string; device: string; deviceId: string };
  };

/** Encodes chunk rows (id, size) as manifest bytes. */
export function encodeRows(rows: readonly { id: string; size: number }[]): Uint8Array {
  const out = new Uint8Array(rows.length * MANIFEST_ROW_BYTES);
  const view = new DataView(out.buffer);
  rows.forEach((row, i) => {
    const at = i * MANIFEST_ROW_BYTES;
    for (let j = 0; j < 32; j++) out[at + j] = parseInt(row.id.substring(j * 2, j * 2 + 2), 16);
    view.setUint32(at + 32, row.size);
  });
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Decodes manifest bytes into chunk rows. SyntaxError if the length is not a whole number of rows. */
export function decodeRows(bytes: Uint8Array): { id: string; size: number }[] {
  if (bytes.length % MANIFEST_ROW_BYTES !== 0) {
    throw new SyntaxError(
      `Cannot decode manifest: ${bytes.length} bytes is not a multiple of ${MANIFEST_ROW_BYTES}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rows: { id: string; size: number }[] = [];
  for (let at = 0; at < bytes.length; at += MANIFEST_ROW_BYTES) {
    let id = "";
    for (let j = 0; j < 32; j++) id += HEX[bytes[at + j]];
    rows.push({ id, size: view.getUint32(at + 32) });
  }
  return rows;
}
