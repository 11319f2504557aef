// The server's config file, DATA/config.json: any option of `filesync server` (the command line wins); the
// store locations in it (--metadata/--kv, metadata-password, --chunks, --master-key) also serve `filesync gc`,
// `user`, `server fsck` and `server migrate`.
import { join } from "node:path";
import { CONFIG_FILE, loadConfig, type MergedConfig, type OptionValue } from "../protocol/config_file.ts";
import { UsageError } from "../protocol/user_error.ts";

/** The options of `filesync server`, as parseArgs takes them (and the keys DATA/config.json may hold). */
export const SERVER_OPTIONS = {
  data: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  metadata: { type: "string" },
  kv: { type: "string" },
  /** Config file only (refused on the command line): the PostgreSQL password of `--metadata`. */
  "metadata-password": { type: "string" },
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
    options: SERVER_OPTIONS,
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
  values: StoreOptions,
): Promise<StoreOptions> {
  refuseSecretOptions(values);
  const merged = await loadServerConfig(dataDir, { ...values }).then((c) => c.values);
  const pick = (name: keyof StoreOptions) => merged[name] as string | undefined;
  return {
    metadata: pick("metadata"),
    kv: pick("kv"),
    "metadata-password": pick("metadata-password"),
    chunks: pick("chunks"),
    "master-key": pick("master-key"),
  };
}

/** The store locations (and the metadata password) a command takes from its options and the config file. */
export interface StoreOptions {
  metadata?: string;
  kv?: string;
  "metadata-password"?: string;
  chunks?: string;
  "master-key"?: string;
}

/** Refuses a credential given on the command line (it would show in the process list). */
export function refuseSecretOptions(values: { "metadata-password"?: unknown }): void {
  if (values["metadata-password"] !== undefined) {
    throw new UsageError(
      `--metadata-password is refused on the command line (it would show in the process list): put ` +
        `"metadata-password" in DATA/${CONFIG_FILE} (chmod 600), or use PGPASSWORD or ~/.pgpass`,
    );
  }
}
