// The server's config file, DATA/config.json: any option of `filesync server` (the command line wins); the
// store locations in it (--metadata/--kv, metadata-password, --chunks, --master-key) also serve `filesync gc`,
// `user`, `server fsck` and `server migrate`.
import { join } from "node:path";
import { CONFIG_FILE, loadConfig, type MergedConfig, type OptionValue } from "../protocol/config_file.ts";

/** The options of `filesync server`, as parseArgs takes them (and the keys DATA/config.json may hold). */
export const SERVER_OPTIONS = {
  data: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  metadata: { type: "string" },
  kv: { type: "string" },
  chunks: { type: "string" },
  "master-key": { type: "string" },
  "keep-days": { type: "string" },
  "keep-versions": { type: "string" },
  "max-file-size": { type: "string" },
  quota: { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-address": { type: "string" },
  "handshake-timeout": { type: "string" },
  "password-checks": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Keys only DATA/config.json may hold, never the command line (where `ps` shows them): an S3 chunk store's keys
 * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY win when set).
 */
export const SERVER_FILE_SECRETS = {
  "s3-access-key-id": { type: "string" },
  "s3-secret-access-key": { type: "string" },
  /** The PostgreSQL password of `--metadata` (PGPASSWORD and ~/.pgpass are the other sources). */
  "metadata-password": { type: "string" },
} as const;

/** Path of the server's config file in a data folder. */
export function serverConfigPath(dataDir: string): string {
  return join(dataDir, CONFIG_FILE);
}

/**
 * Merges `DATA/config.json` (if any) into command-line `values` that hold `data`. The file is refused when other
 * users may read or change it: it may hold credentials (of a database or object store) later.
 */
export async function loadServerConfig(
  dataDir: string,
  values: Record<string, OptionValue>,
): Promise<MergedConfig> {
  return await loadConfig({
    options: { ...SERVER_OPTIONS, ...SERVER_FILE_SECRETS },
    values,
    file: serverConfigPath(dataDir),
    command: "filesync server",
    refuse: { data: "the file is found through --data, which goes on the command line" },
    paths: ["cert", "key", "metadata", "kv", "chunks", "master-key"],
    private: true,
  });
}

/**
 * The store locations for a command that opens the data folder without the server (gc, user, fsck): its own
 * options, else the server's config file's.
 */
export async function storeOptions(
  dataDir: string,
  values: { metadata?: string; kv?: string; chunks?: string; "master-key"?: string },
): Promise<StoreOptions> {
  const merged = await loadServerConfig(dataDir, { ...values }).then((c) => c.values);
  const pick = (name: "metadata" | "kv" | "chunks" | "master-key") => merged[name] as string | undefined;
  return {
    metadata: pick("metadata"),
    kv: pick("kv"),
    chunks: pick("chunks"),
    "master-key": pick("master-key"),
    s3Credentials: s3ConfigCredentials(merged),
    metadataPassword: metadataConfigPassword(merged),
  };
}

/** What {@linkcode storeOptions} resolves with. */
export interface StoreOptions {
  /** --metadata. */
  metadata?: string;
  /** --kv. */
  kv?: string;
  /** --chunks. */
  chunks?: string;
  /** --master-key. */
  "master-key"?: string;
  /** The S3 chunk store's keys from the config file. */
  s3Credentials: { accessKeyId?: string; secretAccessKey?: string };
  /** The PostgreSQL password of --metadata from the config file. */
  metadataPassword?: string;
}

/** The PostgreSQL password a merged config holds (from DATA/config.json only; see {@linkcode SERVER_FILE_SECRETS}). */
export function metadataConfigPassword(values: Record<string, unknown>): string | undefined {
  const value = values["metadata-password"];
  return typeof value === "string" ? value : undefined;
}

/** The S3 chunk store's keys a merged config holds (from DATA/config.json only; see {@linkcode SERVER_FILE_SECRETS}). */
export function s3ConfigCredentials(
  values: Record<string, unknown>,
): { accessKeyId?: string; secretAccessKey?: string } {
  const pick = (name: "s3-access-key-id" | "s3-secret-access-key") =>
    typeof values[name] === "string" ? values[name] as string : undefined;
  return { accessKeyId: pick("s3-access-key-id"), secretAccessKey: pick("s3-secret-access-key") };
}
