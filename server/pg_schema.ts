// The PostgreSQL metadata schema: numbered migrations, applied in one transaction under an advisory lock.
import type { Sql } from "postgres";
import { UserError } from "../protocol/user_error.ts";

/**
 * The migrations, in order: migration N (from 1) brings the schema from version N-1 to N. Never edit one that
 * has shipped; add the next. Text keys that are listed in order are `collate "C"` (byte order, as Deno KV).
 * `fs_key` names a path by its SHA-256, so paths of any length (up to 4096 bytes) fit in an index.
 */
export const MIGRATIONS: readonly string[] = [
  `
  create function fs_key(t text) returns bytea language sql immutable parallel safe
    as $$ select sha256(convert_to(t, 'UTF8')) $$;
  create table meta (key text collate "C" primary key, value jsonb not null);
  create table users (name text collate "C" primary key, rec jsonb not null);
  create table tokens (hash text collate "C" primary key, rec jsonb not null);
  create table devices (
    username text collate "C" not null, device_id text collate "C" not null, rec jsonb not null,
    primary key (username, device_id));
  create table namespaces (id text collate "C" primary key, rec jsonb not null);
  create table grantees (
    username text collate "C" not null, ns text collate "C" not null, primary key (username, ns));
  create index grantees_by_ns on grantees (ns);
  create table counters (ns text collate "C" primary key, seq bigint not null, usage bigint not null);
  create table entries (
    ns text collate "C" not null, path text not null, parent bytea not null, folded text not null,
    rec jsonb not null, k bytea generated always as (fs_key(path)) stored, primary key (ns, k));
  create index entries_by_folder on entries (ns, parent, folded);
  create table journal (ns text collate "C" not null, rev bigint not null, rec jsonb not null,
    primary key (ns, rev));
  create table versions (
    ns text collate "C" not null, path text not null, rev bigint not null, rec jsonb not null,
    k bytea generated always as (fs_key(path)) stored, primary key (ns, k, rev));
  create table trash (ns text collate "C" not null, rev bigint not null, rec jsonb not null,
    primary key (ns, rev));
  create table compactions (ns text collate "C" primary key, rec jsonb not null);
  create table journal_marks (ns text collate "C" primary key, marks jsonb not null);
  create table manifests (
    hash text collate "C" primary key, size bigint not null, count integer not null, rows bytea not null);
  create table committed_chunks (ns text collate "C" not null, id text collate "C" not null,
    primary key (ns, id));
  create table pending_chunks (ns text collate "C" not null, id text collate "C" not null,
    until bigint not null, primary key (ns, id));
  create table locks (
    ns text collate "C" not null, path text not null, rec jsonb not null,
    k bytea generated always as (fs_key(path)) stored, primary key (ns, k));
  `,
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Advisory lock key held while migrating (several nodes starting at once take turns). */
const MIGRATION_LOCK = 0x46530000;

/** What {@linkcode migrate} did: the version found and the version left. */
export interface MigrationResult {
  from: number;
  to: number;
}

/**
 * Brings the database's schema to {@linkcode SCHEMA_VERSION}: creates `schema_version` if missing and applies
 * the missing migrations in order, all in one transaction under an advisory lock. A schema newer than this
 * code knows is a {@linkcode UserError} (nothing is changed). `where` names the database in errors.
 */
export async function migrate(sql: Sql, where: string): Promise<MigrationResult> {
  return await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    const [{ encoding }] = await tx`select pg_encoding_to_char(encoding) as encoding from pg_database
      where datname = current_database()`;
    if (encoding !== "UTF8") {
      throw new UserError(
        `PostgreSQL database ${where} has encoding ${encoding}: filesync needs UTF8 ` +
          `(createdb -E UTF8 -T template0 DB)`,
      );
    }
    await tx`create table if not exists schema_version (version integer not null)`;
    const rows = await tx`select version from schema_version`;
    const from = rows.length === 0 ? 0 : Number(rows[0].version);
    checkVersion(from, where);
    for (let v = from; v < SCHEMA_VERSION; v++) await tx.unsafe(MIGRATIONS[v]);
    if (rows.length === 0) await tx`insert into schema_version (version) values (${SCHEMA_VERSION})`;
    else if (from !== SCHEMA_VERSION) await tx`update schema_version set version = ${SCHEMA_VERSION}`;
    return { from, to: SCHEMA_VERSION };
  });
}

/** The database's schema version (0 when it has none). */
export async function schemaVersion(sql: Sql): Promise<number> {
  const [{ exists }] = await sql`select to_regclass('schema_version') is not null as exists`;
  if (!exists) return 0;
  const rows = await sql`select version from schema_version`;
  return rows.length === 0 ? 0 : Number(rows[0].version);
}

/** Refuses a schema newer than this code knows, in one line. */
export function checkVersion(version: number, where: string): void {
  if (version > SCHEMA_VERSION) {
    throw new UserError(
      `PostgreSQL database ${where} has metadata schema version ${version}, newer than this filesync ` +
        `knows (${SCHEMA_VERSION}): run a newer filesync`,
    );
  }
}
