import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../protocol/user_error.ts";
import {
  configDir,
  listStoredLogins,
  loginFileName,
  loginsDir,
  parseLogin,
  readStoredLogin,
  type StoredLogin,
  storeLogin,
} from "./token_store.ts";

const LOGIN: StoredLogin = {
  hostname: "sync.example.org",
  port: 8443,
  user: "alice",
  device: "laptop (cli)",
  deviceId: "3f2a9c0d1e2b4a5c",
  token: "secret-token",
};

const mode = (path: string) => (Deno.statSync(path).mode ?? 0) & 0o777;

Deno.test("configDir() follows XDG_CONFIG_HOME, else ~/.config", () => {
  const cases: [Record<string, string | undefined>, string, string][] = [
    [{ XDG_CONFIG_HOME: "/cfg", HOME: "/home/a" }, "linux", "/cfg/filesync"],
    [{ HOME: "/home/a" }, "linux", "/home/a/.config/filesync"],
    [{ XDG_CONFIG_HOME: "relative/cfg", HOME: "/home/a" }, "linux", "/home/a/.config/filesync"],
    [{ XDG_CONFIG_HOME: "", HOME: "/home/a" }, "darwin", "/home/a/.config/filesync"],
    [
      { APPDATA: "C:\\Users\\a\\AppData\\Roaming", HOME: "/x" },
      "windows",
      join("C:\\Users\\a\\AppData\\Roaming", "filesync"),
    ],
  ];
  for (const [env, os, want] of cases) assert.equal(configDir(env, os), want, JSON.stringify(env));
  assert.throws(() => configDir({}, "linux"), UserError);
});

Deno.test("loginFileName() gives every server and user a file of its own", () => {
  const cases: [string, number, string, string][] = [
    ["localhost", 8443, "alice", "localhost_8443_alice.json"],
    ["LocalHost", 8443, "alice", "localhost_8443_alice.json"],
    ["::1", 8443, "bob", "%3A%3A1_8443_bob.json"],
    ["a_b", 1, "c", "a%5Fb_1_c.json"],
    ["a", 1, "b_c", "a_1_b%5Fc.json"],
    ["h", 1, "../x", "h_1_..%2Fx.json"],
    ["../../etc", 1, "u", "..%2F..%2Fetc_1_u.json"],
  ];
  for (const [hostname, port, user, want] of cases) {
    assert.equal(loginFileName({ hostname, port, user }), want);
  }
});

Deno.test("storeLogin() writes 0600 in 0700 folders and readStoredLogin() reads it back", async () => {
  const root = await Deno.makeTempDir();
  try {
    const config = join(root, "filesync");
    const file = await storeLogin(config, { ...LOGIN, ca: "-----BEGIN CERTIFICATE-----\n" });
    assert.equal(file, join(loginsDir(config), "sync.example.org_8443_alice.json"));
    if (Deno.build.os !== "windows") {
      assert.equal(mode(file), 0o600);
      assert.equal(mode(config), 0o700);
      assert.equal(mode(loginsDir(config)), 0o700);
    }
    assert.deepEqual(await readStoredLogin(config, LOGIN), { ...LOGIN, ca: "-----BEGIN CERTIFICATE-----\n" });
    // Replaced in place, no temp file left behind.
    await storeLogin(config, { ...LOGIN, token: "" });
    assert.equal((await readStoredLogin(config, LOGIN))?.token, "");
    assert.deepEqual([...Deno.readDirSync(loginsDir(config))].map((e) => e.name), [
      "sync.example.org_8443_alice.json",
    ]);
    assert.equal(await readStoredLogin(config, { ...LOGIN, user: "bob" }), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("storeLogin() makes an existing open config folder private", async () => {
  if (Deno.build.os === "windows") return;
  const root = await Deno.makeTempDir();
  try {
    const config = join(root, "filesync");
    await Deno.mkdir(config, { mode: 0o755 });
    Deno.chmodSync(config, 0o755);
    await storeLogin(config, LOGIN);
    assert.equal(mode(config), 0o700);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a damaged login file is one clear error naming the file and the field", async () => {
  const root = await Deno.makeTempDir();
  try {
    const config = join(root, "filesync");
    const file = await storeLogin(config, LOGIN);
    await Deno.writeTextFile(file, "{not json");
    await assert.rejects(readStoredLogin(config, LOGIN), (e: Error) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /not valid JSON/);
      assert.ok(e.message.includes(file), e.message);
      return true;
    });
    // A damaged file is skipped when listing (it is reported when it is the one asked for).
    assert.deepEqual(await listStoredLogins(config), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("parseLogin() names the field that is wrong", () => {
  const cases: [unknown, RegExp][] = [
    [[], /does not hold an object/],
    [{ ...LOGIN, token: 5 }, /"token" is not a string/],
    [{ ...LOGIN, port: 0 }, /"port" is not a port number/],
    [{ ...LOGIN, port: "8443" }, /"port" is not a port number/],
    [{ ...LOGIN, ca: 1 }, /"ca" is not a string/],
    [{ ...LOGIN, user: undefined }, /"user" is not a string/],
  ];
  for (const [value, want] of cases) {
    assert.throws(() => parseLogin(JSON.stringify(value), "/x/login.json"), want, JSON.stringify(value));
  }
  assert.deepEqual(parseLogin(JSON.stringify({ ...LOGIN, extra: 1 }), "f"), LOGIN);
});

Deno.test("listStoredLogins() lists every kept login, none when the folder is missing", async () => {
  const root = await Deno.makeTempDir();
  try {
    const config = join(root, "filesync");
    assert.deepEqual(await listStoredLogins(config), []);
    await storeLogin(config, LOGIN);
    await storeLogin(config, { ...LOGIN, user: "bob" });
    assert.deepEqual((await listStoredLogins(config)).map((l) => l.user), ["alice", "bob"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
