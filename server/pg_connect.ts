// Opening the PostgreSQL metadata database: the URL (no password in it), the password's sources, one-line errors.
import postgres, { type Sql } from "postgres";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";

/** Where the metadata database is: what `postgres://USER@HOST:PORT/DB` names. */
export interface PostgresTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  /** libpq's `sslmode` (`?sslmode=require` in the URL). @default "disable" */
  sslmode?: "disable" | "prefer" | "require" | "verify-full";
}

const SSL_MODES = ["disable", "prefer", "require", "verify-full"] as const;

/** Where the password may come from instead of the URL, for error lines. */
const PASSWORD_SOURCES = `PGPASSWORD, ~/.pgpass or "metadata-password" in DATA/config.json`;

/** Whether a metadata location names a PostgreSQL database (else it is a Deno KV path or URL). */
export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/**
 * Parses `postgres://USER@HOST[:PORT]/DB[?sslmode=MODE]`. A password in the URL is refused (it would show in
 * the process list and in logs), as is anything else the URL cannot mean; each as a one-line UsageError.
 */
export function parsePostgresUrl(spec: string): PostgresTarget {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new UsageError(`Invalid --metadata "${spec}": expected postgres://USER@HOST:PORT/DB`);
  }
  const shown = `${url.protocol}//${url.username ? `${url.username}@` : ""}${url.host}${url.pathname}`;
  if (url.password) {
    throw new UsageError(
      `Invalid --metadata "${shown}": a password in the URL is refused (it would show in the process list); ` +
        `use ${PASSWORD_SOURCES}`,
    );
  }
  const user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!user || !url.hostname || !database || database.includes("/")) {
    throw new UsageError(`Invalid --metadata "${shown}": expected postgres://USER@HOST:PORT/DB`);
  }
  const target: PostgresTarget = {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : 5432,
    database,
    user,
  };
  for (const [key, value] of url.searchParams) {
    if (key === "sslmode" && (SSL_MODES as readonly string[]).includes(value)) {
      target.sslmode = value as PostgresTarget["sslmode"];
    } else {
      throw new UsageError(
        `Invalid --metadata "${shown}": unknown parameter "${key}=${value}" (only sslmode=${
          SSL_MODES.join("|")
        })`,
      );
    }
  }
  return target;
}

/** The target as one short text for messages: `USER@HOST:PORT/DB` (never a password). */
export function describeTarget(target: PostgresTarget): string {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `${target.user}@${host}:${target.port}/${target.database}`;
}

/**
 * The password a `.pgpass` text gives for the target, or null. Lines are `host:port:database:user:password`,
 * `*` matches anything, `\:` and `\\` escape, `#` starts a comment; the first matching line wins (as libpq).
 */
export function pgpassPassword(text: string, target: PostgresTarget): string | null {
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const fields: string[] = [];
    let field = "";
    for (let i = 0; i < line.length; i++) {
      if (line[i] === "\\" && i + 1 < line.length) field += line[++i];
      else if (line[i] === ":" && fields.length < 4) {
        fields.push(field);
        field = "";
      } else field += line[i];
    }
    fields.push(field);
    if (fields.length !== 5) continue;
    const wanted = [target.host, String(target.port), target.database, target.user];
    if (wanted.every((value, i) => fields[i] === "*" || fields[i] === value)) return fields[4];
  }
  return null;
}

/** Options of {@linkcode resolvePassword}. */
export interface PasswordSources {
  /** `metadata-password` from the server's config file (which is refused when others may read it). */
  configPassword?: string;
  /** The environment. @default Deno.env.get */
  env?: (name: string) => string | undefined;
}

/**
 * The password for the target: the config file's, else PGPASSWORD, else the first matching line of the
 * password file (PGPASSFILE, default ~/.pgpass), which is refused when others may read it; undefined if none.
 */
export async function resolvePassword(
  target: PostgresTarget,
  sources: PasswordSources = {},
): Promise<string | undefined> {
  if (sources.configPassword !== undefined) return sources.configPassword;
  const env = sources.env ?? ((name: string) => Deno.env.get(name));
  const fromEnv = env("PGPASSWORD");
  if (fromEnv !== undefined) return fromEnv;
  const home = env("HOME");
  const file = env("PGPASSFILE") ?? (home ? join(home, ".pgpass") : undefined);
  if (!file) return undefined;
  let text: string;
  try {
    const mode = ((await Deno.stat(file)).mode ?? 0) & 0o777;
    if (mode & 0o077 && Deno.build.os !== "windows") {
      throw new UserError(`${file}: others may read it (mode 0${mode.toString(8)}): chmod 600 it`);
    }
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new UserError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  return pgpassPassword(text, target) ?? undefined;
}

/** Options of {@linkcode connectPostgres}. */
export interface ConnectOptions {
  /** The password (see {@linkcode resolvePassword}); undefined for none. */
  password?: string;
  /** Connections in the pool. @default 10 */
  max?: number;
  /** Seconds to wait for a connection. @default 10 */
  connectTimeout?: number;
}

/**
 * Connects to the target and checks the connection with one query. An unreachable server, a refused login
 * (wrong or missing password) or a missing database is a one-line {@linkcode UserError}.
 */
export async function connectPostgres(target: PostgresTarget, options: ConnectOptions = {}): Promise<Sql> {
  const sql = postgres({
    host: target.host,
    port: target.port,
    database: target.database,
    username: target.user,
    password: options.password ?? "",
    ssl: target.sslmode === "disable" || target.sslmode === undefined ? false : target.sslmode,
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 10,
    idle_timeout: 60,
    onnotice: () => {},
    // Counters and sizes are bigint columns: numbers here (all stay below 2^53).
    types: {
      bigint: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
    },
    connection: { application_name: "filesync" },
  });
  try {
    await sql`select 1`;
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw connectError(error, target, options.password !== undefined);
  }
  return sql;
}

/** One line saying why a connection failed. */
export function connectError(error: unknown, target: PostgresTarget, hadPassword: boolean): UserError {
  const e = error as { code?: string; message?: string };
  const where = describeTarget(target);
  const hostPort = `${target.host}:${target.port}`;
  const message = (e.message ?? String(error)).split("\n")[0];
  switch (e.code) {
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
    case "CONNECT_TIMEOUT":
    case "CONNECTION_CLOSED":
    case "CONNECTION_ENDED":
    case "CONNECTION_DESTROYED":
      return new UserError(
        `Cannot reach PostgreSQL at ${hostPort}: ${e.code === "ENOTFOUND" ? "unknown host" : message}`,
      );
    case "28P01":
    case "SASL_SIGNATURE_MISMATCH":
      return new UserError(
        `PostgreSQL at ${hostPort} refused user "${target.user}": ` +
          (hadPassword ? "wrong password" : `a password is needed (${PASSWORD_SOURCES})`),
      );
    case "28000":
      return new UserError(`PostgreSQL at ${hostPort} refused user "${target.user}": ${message}`);
    case "3D000":
      return new UserError(
        `PostgreSQL at ${hostPort} has no database "${target.database}" (create it: createdb -O ` +
          `${target.user} ${target.database})`,
      );
  }
  if (/password/i.test(message) && !hadPassword) {
    return new UserError(
      `PostgreSQL at ${hostPort} refused user "${target.user}": a password is needed (${PASSWORD_SOURCES})`,
    );
  }
  return new UserError(`Cannot open PostgreSQL metadata ${where}: ${message}`);
}
