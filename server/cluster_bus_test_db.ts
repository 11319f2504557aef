// Test support: a fresh PostgreSQL database per test on the server FILESYNC_TEST_POSTGRES names, dropped after.
import postgres from "postgres";

/** The URL of a PostgreSQL server where tests may create and drop databases, or undefined (no such tests). */
export const TEST_POSTGRES = Deno.env.get("FILESYNC_TEST_POSTGRES") || undefined;

/** A fresh database on the test server, dropped when disposed. */
export async function freshDatabase(): Promise<{ url: string } & AsyncDisposable> {
  const name = `filesync_bus_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(TEST_POSTGRES!, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(TEST_POSTGRES!);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async [Symbol.asyncDispose]() {
      const admin = postgres(TEST_POSTGRES!, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
