// The progress display as a user sees it: a live bar under a pseudo-terminal (util-linux `script`), plain lines
// without one, the JSON events with --json.
import assert from "node:assert/strict";
import { join } from "node:path";
import { filesyncCommand, Proc, randomBytes, waitFor, World } from "./harness.ts";

const BIG = 80 * 1024 * 1024;
const SMALL = "a small file beside it";
const ESC = "\x1b";

/** A shell word for `sh -c`. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

Deno.test("a big initial sync shows a bar redrawn in place on a terminal, plain progress lines otherwise", async () => {
  await using world = await World.create();
  // Device A starts with the files: its initial sync uploads them, its output is a pipe.
  await Deno.mkdir(world.dir("A"), { recursive: true });
  await Deno.writeFile(join(world.dir("A"), "big.bin"), randomBytes(BIG, 7));
  await Deno.writeTextFile(join(world.dir("A"), "small.txt"), SMALL);
  const a = await world.client("A");
  await a.waitForOutput(/uploaded big\.bin/, 60_000);
  assert.match(a.output, /\n\d\d:\d\d:\d\d progress: 0\/2 files, 0 B of 80\.0 MiB\n/);
  await a.waitForOutput(/progress: 2\/2 files, 80\.0 MiB of 80\.0 MiB/);
  assert.ok(!a.output.includes(ESC), `escape sequences in piped output:\n${a.output}`);
  assert.doesNotMatch(a.output, /\d\d:\d\d:\d\d \d\d:\d\d:\d\d/, "a line stamped twice");

  // Device B downloads them under a pseudo-terminal.
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
  await b.waitForOutput(/downloaded small\.txt/);
  // The bar is cleared once the last file is in: the erase comes after its last drawing.
  await waitFor(() => b.output.lastIndexOf(`${ESC}[0J`) > b.output.lastIndexOf("% |"), {
    message: () => `the bar was not cleared:\n${JSON.stringify(b.output)}`,
  });
  const out = b.output;
  const drawn = [...out.matchAll(/(\d+)% \| (\d+)\/2 files \| ([\d.]+ [KMG]?i?B) of 80\.0 MiB/g)];
  assert.ok(drawn.length >= 2, `the bar was drawn ${drawn.length} times:\n${JSON.stringify(out)}`);
  // Redrawn in place: each drawing starts at the start of the line and erases what is right of it.
  assert.ok(out.includes(`${ESC}[1G`) && out.includes(`${ESC}[0K`), JSON.stringify(out));
  assert.ok(Number(drawn[0][1]) < 100, `first drawn at ${drawn[0][1]}%`);
  assert.equal(drawn.at(-1)![1], "100");
  // The first file's line went above the bar, on a line of its own, and the bar was drawn again below it.
  const above = new RegExp(
    `${ESC}\\[2K\\d\\d:\\d\\d:\\d\\d downloaded (small\\.txt|big\\.bin) \\([^)]*\\)\\r?\\n` +
      `${ESC}\\[1G[█░]+ \\d+% \\| 1/2 files`,
  );
  assert.match(out, above, JSON.stringify(out));
  assert.ok(!out.includes("progress:"), "no plain progress lines on a terminal");

  // With --json the events are the progress: no bar, no plain lines.
  const c = await world.client("C", { extraArgs: ["--json", "--verbose"] });
  await c.waitForOutput(/"type":"synced"/, 60_000);
  const events = c.output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const size = BIG + SMALL.length;
  assert.deepEqual(events.find((e) => e.type === "plan")?.downloads, { files: 2, bytes: size }, c.output);
  const transfers = events.filter((e) => e.type === "transfer" && e.path === "big.bin");
  assert.ok(transfers.length >= 2, c.output);
  assert.deepEqual(transfers.at(-1), { ...transfers.at(-1), direction: "down", done: BIG, total: BIG });
  assert.ok(transfers.every((e, i) => i === 0 || e.done > transfers[i - 1].done), c.output);
  const synced = events.find((e) => e.type === "synced");
  assert.deepEqual(synced, { ...synced, files: 2, bytes: size });
  assert.ok(!c.output.includes("progress:") && !c.output.includes(ESC), c.output);
});
