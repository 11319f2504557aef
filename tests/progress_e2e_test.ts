// The progress display as a user sees it: a live bar under a pseudo-terminal (util-linux `script`), plain lines
// without one.
import assert from "node:assert/strict";
import { join } from "node:path";
import { filesyncCommand, Proc, randomBytes, waitFor, World } from "./harness.ts";

const BIG = 80 * 1024 * 1024;
const ESC = "\x1b";

/** A shell word for `sh -c`. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

Deno.test("a big initial sync shows a bar redrawn in place on a terminal, plain progress lines otherwise", async () => {
  await using world = await World.create();
  // Device A starts with the file: its initial sync uploads it, its output is a pipe.
  await Deno.mkdir(world.dir("A"), { recursive: true });
  await Deno.writeFile(join(world.dir("A"), "big.bin"), randomBytes(BIG, 7));
  const a = await world.client("A");
  await a.waitForOutput(/uploaded big\.bin/, 60_000);
  assert.match(a.output, /\n\d\d:\d\d:\d\d progress: 0\/1 file, 0 B of 80\.0 MiB\n/);
  await a.waitForOutput(/progress: 1\/1 file, 80\.0 MiB of 80\.0 MiB/);
  assert.ok(!a.output.includes(ESC), `escape sequences in piped output:\n${a.output}`);

  // Device B downloads it under a pseudo-terminal.
  const args = [
    "client",
    "--server",
    world.server.address,
    "--user",
    world.user,
    "--dir",
    world.dir("B"),
    "--device",
    "B",
    "--ca",
    world.server.caPath,
  ];
  const line = [...filesyncCommand(), ...args].map(quote).join(" ");
  const b = new Proc("client B (terminal)", [], {
    command: ["script", "-q", "-e", "-c", line, "/dev/null"],
    env: { FILESYNC_PASSWORD: world.password },
  });
  world.procs.push(b);
  await b.waitForOutput(/downloaded big\.bin/, 60_000);
  // The bar is cleared once the last file is in: the erase comes after its last drawing.
  await waitFor(() => b.output.lastIndexOf(`${ESC}[0J`) > b.output.lastIndexOf("% |"), {
    message: () => `the bar was not cleared:\n${JSON.stringify(b.output)}`,
  });
  const out = b.output;
  const drawn = [...out.matchAll(/(\d+)% \| (\d+)\/1 file \| ([\d.]+ [KMG]?i?B) of 80\.0 MiB/g)];
  assert.ok(drawn.length >= 2, `the bar was drawn ${drawn.length} times:\n${JSON.stringify(out)}`);
  // Redrawn in place: each drawing starts at the start of the line and erases what is right of it.
  assert.ok(out.includes(`${ESC}[1G`) && out.includes(`${ESC}[0K`), JSON.stringify(out));
  assert.ok(Number(drawn[0][1]) < 100, `first drawn at ${drawn[0][1]}%`);
  assert.equal(drawn.at(-1)![1], "100");
  // The event line went above the bar on a line of its own, not into it.
  assert.match(
    out,
    new RegExp(
      `(${ESC}\\[2K|${ESC}\\[0J|\\n)\\d\\d:\\d\\d:\\d\\d downloaded big\\.bin \\(80\\.0 MiB\\)\\r?\\n`,
    ),
  );
  assert.ok(!out.includes("progress:"), "no plain progress lines on a terminal");
});
