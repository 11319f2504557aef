// The systemd units in packaging/systemd: their content, their options against the CLI, systemd-analyze verify.
import assert from "node:assert/strict";
import { join } from "node:path";
import { TempDir } from "./harness.ts";

const UNITS_DIR = new URL("../packaging/systemd/", import.meta.url).pathname;
const SERVER_UNIT = "filesync-server.service";
const CLIENT_UNIT = "filesync-client@.service";
const INSTALLED_BINARY = "/usr/local/bin/filesync";

/** A unit file's settings: section name → key → values (a key may repeat). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      section = new Map();
      unit.set(header[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section && eq > 0, `not a key=value line in a section: ${line}`);
    const key = line.slice(0, eq);
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1)]);
  }
  return unit;
}

function value(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key);
  assert.ok(values && values.length > 0, `[${section}] ${key}= missing`);
  return values[values.length - 1];
}

async function readUnit(name: string): Promise<{ text: string; unit: Unit }> {
  const text = await Deno.readTextFile(join(UNITS_DIR, name));
  return { text, unit: parseUnit(text) };
}

/** No password, token or key on the command line or in the environment a unit sets. */
function assertNoSecret(unit: Unit): void {
  const service = unit.get("Service")!;
  const exposed = [...(service.get("ExecStart") ?? []), ...(service.get("Environment") ?? [])].join(" ");
  assert.doesNotMatch(exposed, /password|FILESYNC_PASSWORD|token|secret|master-key/i);
  assert.equal(service.get("EnvironmentFile"), undefined);
}

/** The long options `filesync ARGS --help` lists. */
async function helpOptions(args: string[]): Promise<string> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--unstable-kv", main, ...args, "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

async function assertOptionsKnown(execStart: string, command: string): Promise<void> {
  const help = await helpOptions([command]);
  for (const option of execStart.match(/--[a-z-]+/g) ?? []) {
    assert.ok(help.includes(option), `filesync ${command} --help does not list ${option}`);
  }
}

Deno.test("the server unit runs filesync server as user filesync on /var/lib/filesync, hardened", async () => {
  const { unit } = await readUnit(SERVER_UNIT);
  const execStart = value(unit, "Service", "ExecStart");
  assert.match(execStart, new RegExp(`^${INSTALLED_BINARY} server --data /var/lib/filesync --port \\d+$`));
  await assertOptionsKnown(execStart, "server");
  assert.equal(value(unit, "Service", "User"), "filesync");
  assert.equal(value(unit, "Service", "StateDirectory"), "filesync");
  assert.equal(value(unit, "Service", "StateDirectoryMode"), "0700");
  assert.equal(value(unit, "Service", "Restart"), "on-failure");
  assert.equal(value(unit, "Service", "NoNewPrivileges"), "yes");
  assert.equal(value(unit, "Service", "ProtectSystem"), "strict");
  assert.match(value(unit, "Service", "ReadWritePaths"), /(^| )\/var\/lib\/filesync( |$)/);
  assert.equal(value(unit, "Service", "PrivateTmp"), "yes");
  assert.equal(value(unit, "Service", "ProtectHome"), "yes");
  // V8 compiles code at run time: MemoryDenyWriteExecute would kill the server at start.
  assert.equal(unit.get("Service")!.get("MemoryDenyWriteExecute"), undefined);
  assert.equal(value(unit, "Install", "WantedBy"), "multi-user.target");
  assertNoSecret(unit);
});

Deno.test("the client unit is a user template whose instance names the folder under the home", async () => {
  const { unit } = await readUnit(CLIENT_UNIT);
  const execStart = value(unit, "Service", "ExecStart");
  // %I: the instance unescaped (Documents-Work → Documents/Work); options come from DIR/.filesync/config.json.
  assert.equal(execStart, `${INSTALLED_BINARY} client --dir %h/%I`);
  await assertOptionsKnown(execStart, "client");
  assert.equal(value(unit, "Service", "Restart"), "on-failure");
  assert.equal(unit.get("Service")!.get("User"), undefined, "a user unit runs as its user");
  assert.equal(value(unit, "Install", "WantedBy"), "default.target");
  assertNoSecret(unit);
});

Deno.test("systemd-analyze verify accepts both units (with ExecStart on an executable that exists)", async (t) => {
  const analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (!analyze) {
    // Not a skipped test: the content checks above ran; only this system lacks the verifier.
    console.log("systemd-analyze is not installed here: units checked by content only");
    return;
  }
  await using tmp = new TempDir();
  // verify fails on an ExecStart binary that is missing: point the copies at a stand-in filesync.
  const fake = tmp.join("filesync");
  await Deno.writeTextFile(fake, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  for (const name of [SERVER_UNIT, CLIENT_UNIT]) {
    await t.step(name, async () => {
      const text = (await Deno.readTextFile(join(UNITS_DIR, name))).replaceAll(INSTALLED_BINARY, fake);
      const copy = tmp.join(name);
      await Deno.writeTextFile(copy, text);
      const out = await new Deno.Command(analyze, {
        args: ["verify", copy],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      const said = (new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr)).trim();
      assert.equal(out.code, 0, said);
      // verify exits 0 on an unknown key or a bad value, but names the file: any such line is a failure.
      const complaints = said.split("\n").filter((line) => line.includes("filesync"));
      assert.deepEqual(complaints, [], said);
    });
  }
});
