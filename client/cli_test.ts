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
