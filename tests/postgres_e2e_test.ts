// End-to-end on PostgreSQL metadata (when FILESYNC_TEST_POSTGRES is set): migrate, sync through a restart, bad URLs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, run, startConnectedClient, startServer, TempDir, waitFor, waitForFile } from "./harness.ts";
import { connectPostgres } from "../server/pg_connect.ts";
import { SCHEMA_VERSION, schemaVersion } from "../server/pg_schema.ts";
import { freshDatabase, TEST_POSTGRES } from "../server/pg_test_db.ts";

/** Whether the output ends in the one error line of the command, and it matches `pattern`. */
function oneLine(output: string, pattern: RegExp): boolean {
  const errors = output.trim().split("\n").filter((line) => line.startsWith("filesync: "));
  return errors.length === 1 && output.trim().endsWith(errors[0]) && pattern.test(errors[0]);
}

if (TEST_POSTGRES) {
  Deno.test("a server on PostgreSQL: migrate creates the schema, two devices sync, a restart is caught up", async () => {
    await using tmp = new TempDir();
    await using db = await freshDatabase();
    const migrated = await run(["server", "migrate", "--metadata", db.url]);
    assert.equal(migrated.code, 0, migrated.output);
    assert.match(migrated.output, new RegExp(`from schema 0 to ${SCHEMA_VERSION}`));
    const sql = await connectPostgres(db.target, { max: 1 });
    try {
      assert.equal(await schemaVersion(sql), SCHEMA_VERSION);
    } finally {
      await sql.end();
    }

    // The location comes from DATA/config.json: the offline `user add` and the server both use it.
    const data = tmp.join("server");
    await Deno.mkdir(data, { recursive: true });
    await Deno.writeTextFile(join(data, "config.json"), JSON.stringify({ metadata: db.url }), {
      mode: 0o600,
    });
    await addUser(data, "alice", "pw");
    let server = await startServer(data);
    try {
      assert.match(server.output, /metadata in PostgreSQL filesync@127\.0\.0\.1:\d+\/filesync_test_/);
      assert.ok(!(await Deno.stat(join(data, "metadata.kv")).then(() => true, () => false)), "no KV file");
      const options = { server, user: "alice", password: "pw" };
      await using a = await startConnectedClient({ ...options, dir: tmp.join("a"), device: "a" });
      await using b = await startConnectedClient({ ...options, dir: tmp.join("b"), device: "b" });
      await Deno.writeTextFile(tmp.join("a", "one.txt"), "through postgres");
      await waitForFile(tmp.join("b", "one.txt"), "through postgres");

      const port = server.port;
      await server.stop();
      await Deno.writeTextFile(tmp.join("a", "two.txt"), "while the server was down");
      server = await startServer(data, [], port);
      await waitForFile(tmp.join("b", "two.txt"), "while the server was down", 30_000);
      for (const client of [a, b]) {
        await waitFor(() => (client.output.match(/connected to /g) ?? []).length >= 2, {
          message: () => `${client.name} did not reconnect:\n${client.output}`,
        });
      }
    } finally {
      await server.stop();
    }
    // The offline commands open the same database through the config file.
    const fsck = await run(["server", "fsck", "--data", data]);
    assert.equal(fsck.code, 0, fsck.output);
    assert.match(
      fsck.output,
      /^fsck: clean \(2 entries, 0 versions, 0 trash items, 2 journal entries, 2 chunks\)/m,
    );
    const gc = await run(["gc", "--data", data]);
    assert.equal(gc.code, 0, gc.output);
    assert.match(gc.output, /2 chunks in use/);
  });

  Deno.test("a server on PostgreSQL refuses a password in the URL, a wrong password and a missing database in one line", async () => {
    await using tmp = new TempDir();
    await using db = await freshDatabase();
    const base = ["server", "--data", tmp.join("data"), "--port", "0"];
    const host = `${db.target.host}:${db.target.port}`;

    const inUrl = await run([
      ...base,
      "--metadata",
      `postgres://filesync:s3cret@${host}/${db.target.database}`,
    ]);
    assert.equal(inUrl.code, 2);
    assert.ok(oneLine(inUrl.output, /a password in the URL is refused/), inUrl.output);
    assert.ok(!inUrl.output.includes("s3cret"));

    const flag = await run([...base, "--metadata-password", "s3cret"]);
    assert.equal(flag.code, 2);
    assert.ok(oneLine(flag.output, /--metadata-password is refused on the command line/), flag.output);

    const missing = await run([...base, "--metadata", `postgres://filesync@${host}/no_such_db`]);
    assert.equal(missing.code, 1);
    assert.ok(oneLine(missing.output, /has no database "no_such_db"/), missing.output);

    const admin = await connectPostgres(db.target, { max: 1 });
    try {
      await admin.unsafe(`drop role if exists filesync_pw`);
      await admin.unsafe(`create role filesync_pw login password 'right-one'`);
      await admin.unsafe(`grant all on schema public to filesync_pw`);
      const url = `postgres://filesync_pw@${host}/${db.target.database}`;
      const wrong = await run([...base, "--metadata", url], { env: { PGPASSWORD: "wrong" } });
      assert.equal(wrong.code, 1);
      assert.ok(oneLine(wrong.output, /refused user "filesync_pw": wrong password$/), wrong.output);

      // The right password from DATA/config.json (private), with the URL there too.
      const data = tmp.join("with-password");
      await Deno.mkdir(data, { recursive: true });
      const config = { metadata: url, "metadata-password": "right-one" };
      await Deno.writeTextFile(join(data, "config.json"), JSON.stringify(config), { mode: 0o600 });
      await using server = await startServer(data);
      assert.match(server.output, /metadata in PostgreSQL filesync_pw@/);
    } finally {
      // The role owns the tables the server made: they go first, then the role.
      await admin.unsafe(`drop owned by filesync_pw`);
      await admin.unsafe(`drop role filesync_pw`);
      await admin.end();
    }
  });
}
