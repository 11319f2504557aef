// End-to-end tests of config files: a server and a client run from DATA/config.json and DIR/.filesync/config.json,
// the command line wins, and a bad file is refused with one line naming the file and the key.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, Proc, run, startServer, TempDir, waitFor } from "./harness.ts";

/** Writes `value` as JSON to `path` (mode 0600, its folder made first). */
async function writeConfig(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value), { mode: 0o600 });
}

Deno.test("server and client take their options from their config files; the command line wins; bad files are refused", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("server");
  // keep-days is the file's; port 1 and 10M lose to the command line's --port 0 and --max-file-size 20M.
  await writeConfig(join(data, "config.json"), { "keep-days": 7, port: 1, "max-file-size": "10M" });
  await using server = await startServer(data, ["--max-file-size", "20M"]);
  assert.match(server.output, /keeping earlier versions and the trash 7 days/);
  assert.match(server.output, /largest file 20\.0 MiB/);
  assert.notEqual(server.port, 1);
  await addUser(data, "alice", "pw");

  const dir = tmp.join("laptop");
  await writeConfig(join(dir, ".filesync", "config.json"), {
    server: server.address,
    user: "alice",
    ca: server.caPath,
    device: "from-config",
    rescan: 2,
  });
  await Deno.writeTextFile(join(dir, "hello.txt"), "configured");
  await using client = new Proc("client", ["client", "--dir", dir], { env: { FILESYNC_PASSWORD: "pw" } });
  await client.waitForOutput(/connected to /);
  await waitFor(() => /alice@from-config: upload hello\.txt/.test(server.output), {
    message: () => `no upload of hello.txt by device "from-config":\n${server.output}\n${client.output}`,
  });

  // Bad files: one line naming the file and the key; usage errors exit 2, a file others may read exits 1.
  const badDir = (name: string) => tmp.join(name);
  const cases: { name: string; text: string; mode?: number; server?: boolean; code: number; line: string }[] =
    [
      {
        name: "type",
        text: '{"rescan": {}}',
        code: 2,
        line: `${badDir("type")}/.filesync/config.json: "rescan" must be a number or a string, not an object`,
      },
      {
        name: "value",
        text: '{"server": "h:1", "user": "alice", "rescan": "soon"}',
        code: 2,
        line: `${
          badDir("value")
        }/.filesync/config.json: "rescan": Invalid --rescan "soon": give a number of seconds`,
      },
      {
        name: "json",
        text: '{\n  "server": "h:1",\n  "user" "alice"\n}',
        code: 2,
        line: `${badDir("json")}/.filesync/config.json: not valid JSON at line 3, column 10: ` +
          "Expected ':' after property name",
      },
      {
        name: "password",
        text: '{"password": "secret"}',
        code: 2,
        line:
          `${badDir("password")}/.filesync/config.json: "password" cannot be set here: passwords are never ` +
          "kept in files: set FILESYNC_PASSWORD, pipe it on standard input or type it when asked",
      },
      {
        name: "srv-key",
        text: '{"keep-dayz": 3}',
        server: true,
        code: 2,
        line: `${badDir("srv-key")}/config.json: "keep-dayz" is not an option of filesync server ` +
          "(keys are long option names; see filesync server --help)",
      },
      {
        name: "srv-open",
        text: '{"keep-days": 3}',
        mode: 0o644,
        server: true,
        code: 1,
        line:
          `${badDir("srv-open")}/config.json: other users may read or change it (mode 0644); it may hold ` +
          "credentials: chmod 600 it",
      },
    ];
  await Promise.all(cases.map(async (c) => {
    const file = c.server
      ? join(badDir(c.name), "config.json")
      : join(badDir(c.name), ".filesync", "config.json");
    await writeConfig(file, c.text);
    if (c.mode !== undefined) await Deno.chmod(file, c.mode);
    const args = c.server ? ["server", "--data", badDir(c.name)] : ["client", "--dir", badDir(c.name)];
    const { code, output } = await run(args, { env: { FILESYNC_PASSWORD: "pw" } });
    assert.equal(code, c.code, `${c.name}: ${output}`);
    assert.equal(output.trim(), `filesync: ${c.line}`, c.name);
  }));
});
