// Test support: a fresh PostgreSQL database per test on the server FILESYNC_TEST_POSTGRES names, dropped after.
import { randomBytes } from "node:crypto";
import { connectPostgres, parsePostgresUrl, type PostgresTarget } from "./pg_connect.ts";

/** The URL of a PostgreSQL server where tests may create and drop databases, or undefined (no such tests). */
export const TEST_POSTGRES: string | undefined = Deno.env.get("FILESYNC_TEST_POSTGRES") || undefined;

/** A database made for one test: its URL and target; disposing of it drops it. */
export interface TestDatabase extends AsyncDisposable {
  url: string;
  target: PostgresTarget;
}

/** Creates an empty UTF8 database `filesync_test_…` on {@linkcode TEST_POSTGRES}. */
export async function freshDatabase(): Promise<TestDatabase> {
  if (!TEST_POSTGRES) throw new Error("FILESYNC_TEST_POSTGRES is not set");
  const server = parsePostgresUrl(TEST_POSTGRES);
  const name = `filesync_test_${randomBytes(6).toString("hex")}`;
  const admin = await connectPostgres(server, { max: 1 });
  try {
    await admin.unsafe(`create database ${name} encoding 'UTF8' template template0`);
  } finally {
    await admin.end();
  }
  const target = { ...server, database: name };
  const url = new URL(TEST_POSTGRES);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    target,
    async [Symbol.asyncDispose]() {
      const admin = await connectPostgres(server, { max: 1 });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
