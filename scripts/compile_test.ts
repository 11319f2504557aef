// Tests of the release build's targets, arguments and sums (the builds themselves need Deno's runtime download).
import assert from "node:assert/strict";
import { join } from "node:path";
import { binaryName, compileArgs, sumsText, TARGETS } from "./compile.ts";

Deno.test("TARGETS are Linux (x86_64, aarch64), macOS (x86_64, aarch64) and Windows x86_64", () => {
  assert.deepEqual([...TARGETS].sort(), [
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
  ]);
});

Deno.test("binaryName() adds .exe for Windows only", () => {
  assert.equal(binaryName("x86_64-pc-windows-msvc"), "filesync-x86_64-pc-windows-msvc.exe");
  assert.equal(binaryName("aarch64-apple-darwin"), "filesync-aarch64-apple-darwin");
});

Deno.test("compileArgs() compiles main.ts with the permissions of deno task filesync for the target", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))).tasks;
  assert.match(tasks.filesync, /--allow-all --unstable-kv main\.ts$/);
  assert.match(tasks.compile, /scripts\/compile\.ts/);
  assert.deepEqual(compileArgs("x86_64-apple-darwin", "out"), [
    "compile",
    "--allow-all",
    "--unstable-kv",
    "--target",
    "x86_64-apple-darwin",
    "--output",
    join("out", "filesync-x86_64-apple-darwin"),
    "main.ts",
  ]);
});

Deno.test("sumsText() lists SHA-256 and name per file, sorted, as sha256sum -c reads it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "b"), "abc");
    await Deno.writeTextFile(join(dir, "a"), "");
    assert.equal(
      await sumsText([join(dir, "b"), join(dir, "a")]),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n" +
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  b\n",
    );
    const check = await new Deno.Command("sha256sum", { args: ["-c", "-"], cwd: dir, stdin: "piped" })
      .spawn();
    const writer = check.stdin.getWriter();
    await writer.write(new TextEncoder().encode(await sumsText([join(dir, "a"), join(dir, "b")])));
    await writer.close();
    assert.equal((await check.status).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
