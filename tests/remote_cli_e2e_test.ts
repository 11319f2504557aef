// filesync ls / get / put / rm against a real server, with a synced device B that sees what they do.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  chunkBytes,
  Proc,
  randomBytes,
  run,
  transferredBytes,
  waitFor,
  waitForFile,
  waitForGone,
  World,
} from "./harness.ts";
import { DEFAULT_CHUNKING } from "../protocol/chunker.ts";

const MiB = 1024 * 1024;

Deno.test("ls, get, put and rm round-trip files that a synced device receives, with a private token", async () => {
  await using world = await World.create();
  const clientB = await world.client("B");
  const config = world.tmp.join("config");
  const env = { XDG_CONFIG_HOME: config };
  const cli = (args: string[], extra: { password?: string } = {}) =>
    run(args, { env: extra.password === undefined ? env : { ...env, FILESYNC_PASSWORD: extra.password } });
  const reach = ["--server", world.server.address, "--user", world.user, "--ca", world.server.caPath];
  const login = [...reach, "--device", "cli-test"];

  // A wrong password: one clear line, exit 1, no token kept.
  const wrong = await cli(["ls", ...login], { password: "not the password" });
  assert.equal(wrong.code, 1, wrong.output);
  assert.match(wrong.output, /^filesync: Login failed: .+$/m);
  const tokenFile = join(config, "filesync", "logins", `127.0.0.1_${world.server.port}_${world.user}.json`);
  await assert.rejects(Deno.lstat(tokenFile), Deno.errors.NotFound);

  // put: 5 MiB into a folder that does not exist yet; B receives the same bytes.
  const data = randomBytes(5 * MiB, 7);
  const local = world.tmp.join("big.bin");
  await Deno.writeFile(local, data);
  const put = await cli(["put", local, "Docs/", ...login], { password: world.password });
  assert.equal(put.code, 0, put.output);
  assert.match(put.output, /logged in as alice on device "cli-test"/);
  assert.match(put.output, /uploaded Docs\/big\.bin \(5\.0 MiB, 5\.0 MiB sent\)/);
  await waitForFile(join(world.dir("B"), "Docs", "big.bin"), data, 30_000);
  await clientB.waitForOutput(/downloaded Docs\/big\.bin/);
  const token = await Deno.stat(tokenFile);
  assert.equal((token.mode ?? 0) & 0o777, 0o600);
  assert.equal(((await Deno.stat(join(config, "filesync"))).mode ?? 0) & 0o777, 0o700);

  // ls: the kept login (and its CA) serve; no option needed.
  const top = await cli(["ls"]);
  assert.equal(top.code, 0, top.output);
  assert.match(top.output, /^dir +- +- +Docs\/$/m);
  assert.doesNotMatch(top.output, /logged in/);
  const inDocs = await cli(["ls", "Docs", "--json"]);
  assert.equal(inDocs.code, 0, inDocs.output);
  const listed = JSON.parse(inDocs.output);
  assert.equal(listed.path, "Docs");
  assert.deepEqual(
    listed.entries.map((e: { name: string; kind: string; size: number }) => [e.name, e.kind, e.size]),
    [["big.bin", "file", 5 * MiB]],
  );

  // get: back to another path, the same bytes; an existing file is not replaced without --force.
  const copy = world.tmp.join("copy.bin");
  const got = await cli(["get", "Docs/big.bin", copy]);
  assert.equal(got.code, 0, got.output);
  assert.match(got.output, /downloaded Docs\/big\.bin to .*copy\.bin \(5\.0 MiB/);
  assert.deepEqual(await Deno.readFile(copy), data);
  const again = await cli(["get", "Docs/big.bin", copy]);
  assert.equal(again.code, 1, again.output);
  assert.match(again.output, /^filesync: ".*copy\.bin" exists: pass --force to replace it$/m);
  const missing = await cli(["get", "Docs/nothing.txt", world.tmp.join("nothing.txt")]);
  assert.equal(missing.code, 1, missing.output);
  assert.match(missing.output, /^filesync: No file "Docs\/nothing\.txt" on the server \(see filesync ls\)$/m);

  // put of what is there already: nothing to commit.
  const same = await cli(["put", copy, "Docs/big.bin"]);
  assert.equal(same.code, 0, same.output);
  assert.match(same.output, /Docs\/big\.bin is already on the server with the same content/);

  // rm: a folder with something in it needs -r; the file goes, from B too.
  const refused = await cli(["rm", "Docs"]);
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.output, /pass -r to delete it/);
  const removed = await cli(["rm", "Docs/big.bin"]);
  assert.equal(removed.code, 0, removed.output);
  assert.match(removed.output, /deleted Docs\/big\.bin \(kept in the server's trash/);
  await waitForGone(join(world.dir("B"), "Docs", "big.bin"), 30_000);

  // put resumes: a put killed half-way, run again, sends only what had not arrived.
  const large = randomBytes(48 * MiB, 31);
  const largeLocal = world.tmp.join("large.bin");
  await Deno.writeFile(largeLocal, large);
  const before = await chunkBytes(world.server.dataDir);
  const first = new Proc("put", ["put", largeLocal], { env });
  try {
    await waitFor(async () => (await chunkBytes(world.server.dataDir)) > before + 8 * MiB, {
      timeoutMs: 60_000,
    });
    first.kill("SIGKILL");
    await first.exited();
  } finally {
    await first.stop();
  }
  const arrived = (await chunkBytes(world.server.dataDir)) - before;
  assert.ok(arrived < large.length, "the put was cut short before the whole file arrived");
  const resumed = new Proc("put", ["put", largeLocal], { env });
  const sent = await transferredBytes(resumed, "uploaded", "large.bin", 0, 60_000);
  assert.equal(await resumed.exited(), 0, resumed.output);
  assert.ok(
    sent <= large.length - arrived + 2 * DEFAULT_CHUNKING.maxSize,
    `resumed put sent ${sent} bytes of ${large.length}`,
  );

  // get resumes too: a get killed half-way, run again, receives only what it lacked.
  const downloads = world.tmp.join("downloads");
  await Deno.mkdir(downloads);
  const partialDir = join(downloads, ".filesync-get.filesync-tmp");
  const partial = async () => {
    let total = 0;
    try {
      for await (const item of Deno.readDir(partialDir)) {
        total += (await Deno.stat(join(partialDir, item.name))).size;
      }
    } catch { /* not there yet */ }
    return total;
  };
  const firstGet = new Proc("get", ["get", "large.bin", downloads], { env });
  try {
    await waitFor(async () => (await partial()) > 8 * MiB, { timeoutMs: 60_000 });
    firstGet.kill("SIGKILL");
    await firstGet.exited();
  } finally {
    await firstGet.stop();
  }
  const had = await partial();
  assert.ok(had < large.length, "the get was cut short before the whole file arrived");
  const secondGet = await cli(["get", "large.bin", downloads]);
  assert.equal(secondGet.code, 0, secondGet.output);
  const [, amount, unit] = /, ([\d.]+) (B|KiB|MiB) received\)/.exec(secondGet.output) ?? [];
  const received = Number(amount) * { B: 1, KiB: 1024, MiB }[unit as "B" | "KiB" | "MiB"];
  assert.ok(
    received <= large.length - had + 2 * DEFAULT_CHUNKING.maxSize,
    `resumed get received ${received}`,
  );
  assert.deepEqual(await Deno.readFile(join(downloads, "large.bin")), large);
  await assert.rejects(Deno.lstat(partialDir), Deno.errors.NotFound);

  // A changed password: the kept token is refused, and the command logs in again with the new password.
  const passwd = await run(["user", "passwd", world.user, "--data", world.server.dataDir], {
    env: { FILESYNC_PASSWORD: "a new password" },
  });
  assert.equal(passwd.code, 0, passwd.output);
  const relogin = await cli(["ls", "large.bin"], { password: "a new password" });
  assert.equal(relogin.code, 0, relogin.output);
  assert.match(relogin.output, /logging in again with the password/);
  assert.match(relogin.output, /logged in as alice on device "cli-test"/, "the kept login's device name");
  assert.match(relogin.output, /^file +48\.0 MiB .* large\.bin$/m);

  // A revoked device logs in again only with a password typed at a terminal; without one: a clear line, and the
  // next command logs in as a first one.
  const { deviceId } = JSON.parse(await Deno.readTextFile(tokenFile));
  const revoke = await run(["user", "revoke", world.user, deviceId, "--data", world.server.dataDir]);
  assert.equal(revoke.code, 0, revoke.output);
  const revoked = await cli(["ls"], { password: "a new password" });
  assert.equal(revoked.code, 1, revoked.output);
  assert.match(
    revoked.output,
    /^filesync: This device was revoked on the server, and there is no terminal here/m,
  );
  const fresh = await cli(["ls"], { password: "a new password" });
  assert.equal(fresh.code, 0, fresh.output);
  assert.match(fresh.output, /logged in as alice/);
  assert.notEqual(JSON.parse(await Deno.readTextFile(tokenFile)).deviceId, deviceId);
});
