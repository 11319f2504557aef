import assert from "node:assert/strict";
import { UsageError } from "../protocol/user_error.ts";
import { clientCommand, verbosityOf } from "./cli.ts";

Deno.test("verbosityOf(): --quiet, --verbose or neither; both at once is a usage error", () => {
  assert.equal(verbosityOf({}), "normal");
  assert.equal(verbosityOf({ quiet: true }), "quiet");
  assert.equal(verbosityOf({ verbose: true }), "verbose");
  assert.throws(() => verbosityOf({ quiet: true, verbose: true }), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.equal(error.message, "--quiet and --verbose cannot be used together (see filesync client --help)");
    return true;
  });
});

Deno.test("filesync client --quiet --verbose stops with the usage error before touching anything", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-cli-" });
  try {
    const args = ["--server", "127.0.0.1:1", "--user", "u", "--dir", `${dir}/sync`, "--quiet", "--verbose"];
    await assert.rejects(() => clientCommand(args), UsageError);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "the folder was made anyway");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("filesync client takes several --server, from the command line or a list in the config file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-cli-" });
  try {
    const sync = `${dir}/sync`;
    const base = ["--user", "u", "--dir", sync, "--quiet", "--verbose"];
    // The servers parse (the stop comes after them, from --quiet --verbose, before anything is touched).
    await assert.rejects(
      () => clientCommand(["--server", "a:1", "--server", "[::1]:2", ...base]),
      (error: Error) => error instanceof UsageError && /--quiet and --verbose/.test(error.message),
    );
    const cases: { args: string[]; config?: unknown; message: string }[] = [
      {
        args: ["--server", "a:1", "--server", "a:1"],
        message: '--server "a:1" is given twice: list each server once',
      },
      {
        args: ["--server", "a:1", "--server", "b"],
        message: 'Invalid --server "b": expected HOST:PORT, for example localhost:8443',
      },
      {
        args: [],
        config: { server: ["a:1", "a:1"] },
        message:
          `${sync}/.filesync/config.json: "server": --server "a:1" is given twice: list each server once`,
      },
      {
        args: [],
        config: { server: [] },
        message:
          `${sync}/.filesync/config.json: "server" is an empty list: give at least one value, or leave "server" out`,
      },
    ];
    for (const { args, config, message } of cases) {
      await Deno.remove(sync, { recursive: true }).catch(() => {});
      if (config !== undefined) {
        await Deno.mkdir(`${sync}/.filesync`, { recursive: true });
        await Deno.writeTextFile(`${sync}/.filesync/config.json`, JSON.stringify(config));
      }
      await assert.rejects(
        () => clientCommand([...args, "--user", "u", "--dir", sync]),
        (error: Error) => error instanceof UsageError && error.message === message,
        message,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
