// `filesync server fsck`: checks a stopped server's metadata and chunks against each other, through their interfaces.
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { fileHashOfChunks } from "../protocol/hash.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { adminRequest } from "./admin.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { ChunkDamagedError } from "./chunk_cipher.ts";
import { openServerChunks } from "./master_key.ts";
import { closeMetadata, isDefaultMetadata, metadataSpec, openMetadata } from "./metadata_open.ts";
import type { ChunkRow, MetadataStore } from "./metadata_store.ts";
import { storeOptions } from "./server_config.ts";

/** One thing fsck found wrong. */
export interface FsckProblem {
  /** What kind of problem: "manifest", "size", "hash", "chunk", "journal", "trash". */
  kind: string;
  /** Namespace it was found in ("" for chunks shared by all). */
  ns: string;
  /** A line for the user. */
  message: string;
}

/** What {@linkcode fsck} checked and found. */
export interface FsckReport {
  /** Everything found wrong, in the order found. */
  problems: FsckProblem[];
  /** Live entries checked. */
  entries: number;
  /** Kept versions checked. */
  versions: number;
  /** Trash items checked. */
  trash: number;
  /** Journal entries read. */
  journal: number;
  /** Distinct chunks checked against their ids. */
  chunks: number;
}

/** Options of {@linkcode fsck}. */
export interface FsckOptions {
  /** Called with each problem as it is found. */
  onProblem?: (problem: FsckProblem) => void;
}

/**
 * Checks every live entry, kept version and trash item against its manifest (present, rows adding up to the
 * size, file hash equal to {@linkcode fileHashOfChunks} of the rows), every referenced chunk against its id
 * (stored, of the size the rows say, its content hashing to the id), and that each journal's counter and
 * entries agree (entries from the compaction point to the counter, none missing, none beyond it). Reads only.
 */
export async function fsck(
  store: MetadataStore,
  chunks: ChunkStore,
  options: FsckOptions = {},
): Promise<FsckReport> {
  const report: FsckReport = { problems: [], entries: 0, versions: 0, trash: 0, journal: 0, chunks: 0 };
  const problem = (kind: string, ns: string, message: string) => {
    const found = { kind, ns, message };
    report.problems.push(found);
    options.onProblem?.(found);
  };
  /** Chunk id -> the size rows give it and one place that uses it. */
  const referenced = new Map<string, { size: number; where: string }>();
  const manifests = new Map<string, ChunkRow[] | null>();
  const checkFile = async (ns: string, where: string, file: { hash: string; size: number }) => {
    if (!manifests.has(file.hash)) manifests.set(file.hash, await store.getManifest(file.hash));
    const rows = manifests.get(file.hash);
    if (!rows) {
      problem("manifest", ns, `${where}: manifest ${file.hash.slice(0, 12)} is missing`);
      return;
    }
    const size = rows.reduce((n, r) => n + r.size, 0);
    if (size !== file.size) {
      problem("size", ns, `${where}: manifest rows add up to ${size} bytes, the file has ${file.size}`);
    }
    const hash = fileHashOfChunks(rows.map((r) => r.id));
    if (hash !== file.hash) {
      problem(
        "hash",
        ns,
        `${where}: the hash of the manifest's chunks is ${hash.slice(0, 12)}, not ${file.hash.slice(0, 12)}`,
      );
    }
    for (const row of rows) {
      const known = referenced.get(row.id);
      if (!known) referenced.set(row.id, { size: row.size, where });
      else if (known.size !== row.size) {
        problem(
          "chunk",
          ns,
          `${where}: chunk ${row.id.slice(0, 12)} has size ${row.size} here, ${known.size} in ${known.where}`,
        );
      }
    }
  };

  for await (const ns of store.listNamespaces()) {
    const latest = await store.latestSeq(ns);
    for await (const entry of store.listEntries(ns)) {
      report.entries++;
      if (entry.rev > latest) {
        problem(
          "journal",
          ns,
          `${ns}: entry "${entry.path}" has rev ${entry.rev}, beyond the journal counter ${latest}`,
        );
      }
      if (entry.kind === "file") await checkFile(ns, `${ns}: file "${entry.path}" (rev ${entry.rev})`, entry);
    }
    const versions = new Set<string>();
    for await (const version of store.listAllVersions(ns)) {
      report.versions++;
      versions.add(`${version.rev}\u0000${version.path}`);
      await checkFile(ns, `${ns}: version ${version.rev} of "${version.path}"`, version);
    }
    for (const item of await store.listTrash(ns)) {
      report.trash++;
      if (item.kind === "file" && !versions.has(`${item.version}\u0000${item.path}`)) {
        problem(
          "trash",
          ns,
          `${ns}: trash item "${item.path}" (deleted at rev ${item.rev}) has no kept version ${item.version}`,
        );
      }
    }
    // The journal: kept entries run without a gap from the compaction point to the counter.
    const compacted = (await store.getCompaction(ns))?.seq ?? 0;
    let expect = compacted + 1;
    for (let since = compacted;;) {
      const page = await store.changesSince(ns, since, 1000);
      if (page.length === 0) break;
      for (const event of page) {
        report.journal++;
        if (event.rev > latest) {
          problem(
            "journal",
            ns,
            `${ns}: journal entry ${event.rev} ("${event.path}") is beyond the counter ${latest}`,
          );
        } else if (event.rev !== expect) {
          problem("journal", ns, `${ns}: journal entries ${expect}..${event.rev - 1} are missing`);
        }
        expect = event.rev + 1;
      }
      since = page[page.length - 1].rev;
    }
    if (expect <= latest) {
      problem(
        "journal",
        ns,
        `${ns}: journal entries ${expect}..${latest} are missing (the counter is ${latest})`,
      );
    }
  }

  for (const [id, { size, where }] of referenced) {
    report.chunks++;
    let data: Uint8Array | null;
    try {
      data = await chunks.get(id);
    } catch (error) {
      if (!(error instanceof ChunkDamagedError)) throw error;
      problem(
        "chunk",
        "",
        `chunk ${id.slice(0, 12)} is damaged: it does not decrypt (${error.reason}; used by ${where})`,
      );
      continue;
    }
    if (!data) {
      problem("chunk", "", `chunk ${id.slice(0, 12)} is missing (used by ${where})`);
      continue;
    }
    const actual = createHash("sha256").update(data).digest("hex");
    if (actual !== id) {
      problem(
        "chunk",
        "",
        `chunk ${id.slice(0, 12)} is corrupt: its content hashes to ${
          actual.slice(0, 12)
        } (used by ${where})`,
      );
    } else if (data.length !== size) {
      problem(
        "chunk",
        "",
        `chunk ${id.slice(0, 12)} has ${data.length} bytes, its manifest says ${size} (used by ${where})`,
      );
    }
  }
  return report;
}

/** Help text of `filesync server fsck`. */
export const FSCK_HELP =
  `Usage: filesync server fsck --data DIR [--json] [--metadata LOCATION] [--chunks SPEC] [--master-key FILE]

Checks a stopped server's data folder: every file, kept version and trash item against its manifest, every
chunk they use against its hash (decrypted with the master key: a tampered chunk is reported as damaged),
and the journal's counter against its entries. Prints one line per problem
and exits 1 if there is any (0 when clean). Refuses while a server runs on DIR. Changes nothing.

Options:
  --data DIR            the server's data folder
  --json                print the report as JSON
  --metadata LOCATION   metadata store (default DIR/metadata.kv; or postgres://USER@HOST:PORT/DB)
  --kv PATH_OR_URL      the older name of --metadata, for Deno KV
  --chunks SPEC         chunk store (default DIR/chunks)
  --master-key FILE     the server's master key (default DIR/keys/master.key)
  -h, --help            show this help
`;

/** Runs `filesync server fsck ARGS`; resolves with the exit code. */
export async function fsckCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      metadata: { type: "string" },
      kv: { type: "string" },
      chunks: { type: "string" },
      "master-key": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(FSCK_HELP);
    return 0;
  }
  if (!values.data) throw new UsageError("Missing --data DIR (see filesync server fsck --help)");
  try {
    if (!(await Deno.stat(values.data)).isDirectory) throw new UserError(`"${values.data}" is not a folder`);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`Cannot read data folder "${values.data}": ${(error as Error).message}`);
  }
  // The stores the server uses, when its config file names them.
  const stores = await storeOptions(values.data, values);
  Object.assign(values, stores);
  if (isDefaultMetadata(values)) {
    try {
      await Deno.stat(metadataSpec(values.data, values));
    } catch {
      throw new UserError(`"${values.data}" holds no metadata.kv: is it a server's data folder?`);
    }
  }
  if (await adminRequest(values.data, { op: "ping" })) {
    throw new UserError(
      `A filesync server is running with data folder "${values.data}": stop it before fsck`,
    );
  }
  const { store: chunks } = await openServerChunks({
    dataDir: values.data,
    chunks: values.chunks,
    s3Credentials: stores.s3Credentials,
    masterKeyFile: values["master-key"],
    readOnly: true,
  });
  // fsck changes nothing: an older PostgreSQL schema is refused rather than migrated.
  const store = await openMetadata({
    dataDir: values.data,
    metadata: values.metadata,
    kv: values.kv,
    password: stores.metadataPassword,
    migrate: false,
  });
  let report: FsckReport;
  try {
    report = await fsck(store, chunks, {
      onProblem: values.json ? undefined : (p) => console.log(p.message),
    });
  } finally {
    await closeMetadata(store);
  }
  const { problems, ...counts } = report;
  if (values.json) {
    console.log(JSON.stringify({ ok: problems.length === 0, problems, checked: counts }, null, 2));
  } else {
    const checked = `${counts.entries} entries, ${counts.versions} versions, ${counts.trash} trash items, ` +
      `${counts.journal} journal entries, ${counts.chunks} chunks`;
    console.log(
      problems.length === 0
        ? `fsck: clean (${checked})`
        : `fsck: ${problems.length} problem${problems.length === 1 ? "" : "s"} (checked ${checked})`,
    );
  }
  return problems.length === 0 ? 0 : 1;
}
