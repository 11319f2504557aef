// The PostgreSQL URL, the password's sources and the one-line errors (against a real server when one is set).
import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { connectPostgres, parsePostgresUrl, pgpassPassword, resolvePassword } from "./pg_connect.ts";
import { checkVersion, migrate, SCHEMA_VERSION, schemaVersion } from "./pg_schema.ts";
import { metadataSpec, openMetadata } from "./metadata_open.ts";
import { freshDatabase, TEST_POSTGRES } from "./pg_test_db.ts";

const target = { host: "db.example", port: 5433, database: "files", user: "sync" };

Deno.test("parsePostgresUrl reads USER@HOST:PORT/DB and sslmode; the port defaults to 5432", () => {
  assert.deepEqual(parsePostgresUrl("postgres://sync@db.example:5433/files"), target);
  assert.deepEqual(parsePostgresUrl("postgresql://sync@[::1]/files?sslmode=require"), {
    host: "::1",
    port: 5432,
    database: "files",
    user: "sync",
    sslmode: "require",
  });
});

Deno.test("parsePostgresUrl refuses a password in the URL without echoing it, and URLs it cannot use", () => {
  assert.throws(
    () => parsePostgresUrl("postgres://sync:s3cret@db.example/files"),
    (e: Error) =>
      e instanceof UsageError && /password in the URL is refused/.test(e.message) &&
      !e.message.includes("s3cret") && !e.message.includes("\n"),
  );
  for (
    const bad of ["postgres://db.example/files", "postgres://sync@db.example/", "postgres://sync@h/d?x=1"]
  ) {
    assert.throws(() => parsePostgresUrl(bad), UsageError, bad);
  }
});

Deno.test("pgpassPassword takes the first matching line, with wildcards, escapes and comments", () => {
  const text = [
    "# comment",
    "other:5433:files:sync:nope",
    "db.example:5433:files:sync:pa\\:ss\\\\word",
    "*:*:*:*:fallback",
  ].join("\n");
  assert.equal(pgpassPassword(text, target), "pa:ss\\word");
  assert.equal(pgpassPassword(text, { ...target, user: "x" }), "fallback");
  assert.equal(pgpassPassword("h:1:d:u:p", target), null);
});

Deno.test("resolvePassword: the config file's, else PGPASSWORD, else a private .pgpass (a readable one is refused)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-pgpass-" });
  try {
    const file = join(dir, ".pgpass");
    await Deno.writeTextFile(file, "*:*:*:sync:from-file\n", { mode: 0o600 });
    await Deno.chmod(file, 0o600);
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    assert.equal(await resolvePassword(target, { configPassword: "c", env: env({ PGPASSWORD: "e" }) }), "c");
    assert.equal(await resolvePassword(target, { env: env({ PGPASSWORD: "e", HOME: dir }) }), "e");
    assert.equal(await resolvePassword(target, { env: env({ HOME: dir }) }), "from-file");
    assert.equal(await resolvePassword(target, { env: env({ PGPASSFILE: join(dir, "none") }) }), undefined);
    await Deno.chmod(file, 0o644);
    await assert.rejects(() => resolvePassword(target, { env: env({ HOME: dir }) }), /chmod 600/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metadataSpec: DATA/metadata.kv by default, --kv as the older name, not both, no URL for --kv", () => {
  assert.equal(metadataSpec("/d", {}), join("/d", "metadata.kv"));
  assert.equal(metadataSpec("/d", { kv: "/k.kv" }), "/k.kv");
  assert.equal(metadataSpec("/d", { metadata: "postgres://u@h/db" }), "postgres://u@h/db");
  assert.throws(() => metadataSpec("/d", { kv: "/a", metadata: "/b" }), UsageError);
  assert.throws(() => metadataSpec("/d", { kv: "postgres://u@h/db" }), UsageError);
});

Deno.test("checkVersion refuses a schema newer than the code in one line", () => {
  checkVersion(SCHEMA_VERSION, "x");
  assert.throws(() => checkVersion(SCHEMA_VERSION + 1, "u@h:1/db"), /newer than this filesync knows/);
});

Deno.test("connectPostgres: an unreachable server is one line", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    () => connectPostgres({ host: "127.0.0.1", port, database: "d", user: "u" }, { connectTimeout: 5 }),
    (e: Error) =>
      e instanceof UserError && e.message.startsWith(`Cannot reach PostgreSQL at 127.0.0.1:${port}: `) &&
      !e.message.includes("\n"),
  );
});

if (TEST_POSTGRES) {
  const server = parsePostgresUrl(TEST_POSTGRES);

  Deno.test("connectPostgres: a missing database, and a wrong or missing password, are one line each", async () => {
    await using db = await freshDatabase();
    await assert.rejects(
      () => connectPostgres({ ...server, database: "no_such_db" }),
      /has no database "no_such_db"/,
    );
    const admin = await connectPostgres(db.target);
    try {
      await admin.unsafe(`drop role if exists filesync_pw`);
      await admin.unsafe(`create role filesync_pw login password 'right-one'`);
      const pw = { ...db.target, user: "filesync_pw" };
      await assert.rejects(
        () => connectPostgres(pw, { password: "wrong" }),
        /refused user "filesync_pw": wrong password$/,
      );
      await assert.rejects(() => connectPostgres(pw), /a password is needed \(PGPASSWORD/);
      const sql = await connectPostgres(pw, { password: "right-one" });
      await sql.end();
    } finally {
      await admin.unsafe(`drop role if exists filesync_pw`).catch(() => {});
      await admin.end();
    }
  });

  Deno.test("migrate: several at once create the schema once; a newer schema is refused before anything opens", async () => {
    await using db = await freshDatabase();
    const clients = await Promise.all([1, 2, 3].map(() => connectPostgres(db.target, { max: 1 })));
    try {
      const results = await Promise.all(clients.map((sql) => migrate(sql, "db")));
      assert.deepEqual(results.map((r) => r.from).sort(), [0, SCHEMA_VERSION, SCHEMA_VERSION]);
      assert.equal(await schemaVersion(clients[0]), SCHEMA_VERSION);
      await clients[0]`update schema_version set version = ${SCHEMA_VERSION + 1}`;
      await assert.rejects(
        () => openMetadata({ dataDir: ".", metadata: db.url }),
        /has metadata schema version 2, newer than this filesync knows \(1\)/,
      );
    } finally {
      await Promise.all(clients.map((sql) => sql.end()));
    }
  });
}
