// Opens the metadata store a command names: DATA/metadata.kv by default, a Deno KV path/URL, or PostgreSQL.
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { MetadataStore } from "./metadata_store.ts";
import { PgMetadataStore } from "./metadata_pg.ts";
import {
  connectPostgres,
  describeTarget,
  isPostgresUrl,
  parsePostgresUrl,
  resolvePassword,
} from "./pg_connect.ts";
import { checkVersion, migrate, SCHEMA_VERSION, schemaVersion } from "./pg_schema.ts";

/** Where the metadata is, as the options give it. */
export interface MetadataLocation {
  /** `--metadata`: a postgres:// URL, or a Deno KV file path or KV Connect URL. */
  metadata?: string;
  /** `--kv`: the older name of `--metadata`, for a Deno KV path or URL. */
  kv?: string;
  /** `metadata-password` of the server's config file. */
  password?: string;
}

/** The metadata location: --metadata or --kv (not both), else DATA/metadata.kv. */
export function metadataSpec(dataDir: string, location: MetadataLocation): string {
  if (location.metadata !== undefined && location.kv !== undefined) {
    throw new UsageError("Give --metadata or --kv, not both (--kv is the older name of --metadata)");
  }
  if (location.kv !== undefined && isPostgresUrl(location.kv)) {
    throw new UsageError(`--kv takes a Deno KV path or URL: give a PostgreSQL URL with --metadata`);
  }
  return location.metadata ?? location.kv ?? join(dataDir, "metadata.kv");
}

/** Whether the location is the default KV file of the data folder (fsck checks that it exists). */
export function isDefaultMetadata(location: MetadataLocation): boolean {
  return location.metadata === undefined && location.kv === undefined;
}

/** Options of {@linkcode openMetadata}. */
export interface OpenMetadataOptions extends MetadataLocation {
  /** The data folder (holds the default KV file). */
  dataDir: string;
  /** The clock. @default Date.now */
  now?: () => number;
  /** KV only: the test hook of `KvMetadataOptions.beforeAtomic`. */
  beforeAtomic?: (index: number) => void | Promise<void>;
  /**
   * PostgreSQL only: bring an older schema up to date (as the server, gc and user commands do); otherwise an
   * older schema is refused with a line saying to run `filesync server migrate`. @default true
   */
  migrate?: boolean;
  /** Where lines about migrations go. @default nowhere */
  log?: (line: string) => void;
}

/** Opens the metadata store; a PostgreSQL database is migrated first (see `migrate`). */
export async function openMetadata(options: OpenMetadataOptions): Promise<MetadataStore> {
  const spec = metadataSpec(options.dataDir, options);
  if (!isPostgresUrl(spec)) {
    return await KvMetadataStore.open(spec, { now: options.now, beforeAtomic: options.beforeAtomic });
  }
  const target = parsePostgresUrl(spec);
  const where = describeTarget(target);
  const sql = await connectPostgres(target, {
    password: await resolvePassword(target, { configPassword: options.password }),
  });
  try {
    if (options.migrate ?? true) {
      const { from, to } = await migrate(sql, where);
      if (from !== to) options.log?.(`migrated PostgreSQL metadata ${where} from schema ${from} to ${to}`);
    } else {
      const version = await schemaVersion(sql);
      checkVersion(version, where);
      if (version < SCHEMA_VERSION) {
        throw new UserError(
          `PostgreSQL database ${where} has metadata schema version ${version}, older than this filesync's ` +
            `(${SCHEMA_VERSION}): run "filesync server migrate --metadata URL" first`,
        );
      }
    }
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw error;
  }
  options.log?.(`metadata in PostgreSQL ${where}`);
  return new PgMetadataStore(sql, { now: options.now });
}

/** Closes a store, waiting for its connections to close where it has any (PostgreSQL). */
export async function closeMetadata(store: MetadataStore): Promise<void> {
  if (store instanceof PgMetadataStore) await store.end();
  else store.close();
}
