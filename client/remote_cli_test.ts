import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { formatLsLine, getCommand, lsCommand, putCommand, rmCommand } from "./remote_cli.ts";

Deno.test("formatLsLine() shows kind, size, time and name; folders with a slash", () => {
  const hash = "ab".repeat(32);
  const mtime = Date.UTC(2026, 11, 1, 20, 18, 27);
  assert.equal(
    formatLsLine({
      path: "Docs/a.txt",
      kind: "file",
      hash,
      size: 5 * 1024 * 1024,
      mtime,
      rev: 3,
      device: "A",
    }, "a.txt"),
    "file     5.0 MiB  2026-12-01 20:18:27 UTC  a.txt",
  );
  assert.equal(
    formatLsLine({ path: "Docs", kind: "dir", hash: "", size: 0, mtime: 0, rev: 1, device: "A" }, "Docs"),
    "dir            -  -                        Docs/",
  );
});

Deno.test("bad use is refused before anything is sent: wrong counts, bad paths, local files in the way", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const options = { cwd: tmp, env: { XDG_CONFIG_HOME: join(tmp, "cfg") }, print: () => {}, log: () => {} };
    await Deno.writeTextFile(join(tmp, "here.txt"), "mine");
    await Deno.mkdir(join(tmp, "folder"));
    const cases: [() => Promise<number>, typeof UserError, RegExp][] = [
      [() => lsCommand(["a", "b"], options), UsageError, /Wrong number of paths \(see filesync ls --help\)/],
      [() => getCommand([], options), UsageError, /Wrong number of paths/],
      [() => putCommand(["a", "b", "c"], options), UsageError, /Wrong number of paths/],
      [() => rmCommand([], options), UsageError, /Wrong number of paths/],
      [() => lsCommand(["a/../b"], options), UserError, /\.\./],
      [() => getCommand(["/"], options), UserError, /Name a file on the server/],
      [() => getCommand(["docs/here.txt"], options), UserError, /here\.txt" exists: pass --force/],
      [() => getCommand(["x.txt", "missing/x.txt"], options), UserError, /Folder ".*missing" does not exist/],
      [() => putCommand(["nothing.txt"], options), UserError, /No file "nothing\.txt"/],
      [() => putCommand(["folder"], options), UserError, /"folder" is a folder: filesync put sends one file/],
      [() => putCommand(["here.txt", "a/../b"], options), UserError, /\.\./],
      [() => rmCommand(["/"], options), UserError, /Refusing to delete all your files/],
      [() => rmCommand(["a//b"], options), UserError, /Invalid path/],
      [() => lsCommand([], options), UsageError, /Missing --server and --user/],
    ];
    for (const [command, type, want] of cases) {
      await assert.rejects(command(), (e: Error) => e instanceof type && want.test(e.message));
    }
    await assert.rejects(lsCommand(["--bogus"], options), (e: Error) => e instanceof TypeError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("every command prints its help with --help", async () => {
  for (
    const [command, word] of [[lsCommand, "ls"], [getCommand, "get"], [putCommand, "put"], [
      rmCommand,
      "rm",
    ]] as const
  ) {
    const lines: string[] = [];
    assert.equal(await command(["--help"], { print: (l) => lines.push(l) }), 0);
    assert.match(lines.join("\n"), new RegExp(`Usage: filesync ${word} `));
    assert.match(lines.join("\n"), /--server HOST:PORT/);
  }
});
