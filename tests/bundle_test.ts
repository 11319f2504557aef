// The offline build: `deno bundle` output runs the server and clients and syncs a file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, startConnectedClient, startServer, TempDir, waitForFile } from "./harness.ts";

Deno.test("the bundled build (deno task bundle) serves and syncs like the source", async () => {
  await using tmp = new TempDir();
  const out = tmp.join("filesync.js");
  const root = new URL("..", import.meta.url).pathname;
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--config", join(root, "deno.json"), "-o", out, join(root, "main.ts")],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));
  const previous = Deno.env.get("FILESYNC_CMD");
  Deno.env.set("FILESYNC_CMD", `${Deno.execPath()} run --allow-all --unstable-kv ${out}`);
  try {
    await using server = await startServer(tmp.join("server"));
    // The bundle loads libcrypto through FFI as the source does (--allow-all includes --allow-ffi).
    assert.match(server.output, /chunks encrypted at rest with AES-256-GCM through OpenSSL libcrypto/);
    await addUser(server.dataDir, "alice", "pw");
    await using a = await startConnectedClient({
      server,
      user: "alice",
      password: "pw",
      dir: tmp.join("a"),
      device: "A",
    });
    await using b = await startConnectedClient({
      server,
      user: "alice",
      password: "pw",
      dir: tmp.join("b"),
      device: "B",
    });
    await Deno.writeTextFile(tmp.join("a", "note.txt"), "from the bundle");
    await waitForFile(tmp.join("b", "note.txt"), "from the bundle");
    await a.waitForOutput(/uploaded note\.txt/);
    await b.waitForOutput(/downloaded note\.txt/);
  } finally {
    if (previous === undefined) Deno.env.delete("FILESYNC_CMD");
    else Deno.env.set("FILESYNC_CMD", previous);
  }
});
