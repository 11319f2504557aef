// Tests for config files: merging with the command line, and one clear line for every bad file.
import assert from "node:assert/strict";
import { blameConfig, loadConfig, mergeConfig, type OptionValue } from "./config_file.ts";
import { UsageError, UserError } from "./user_error.ts";

const OPTIONS = {
  server: { type: "string" },
  ca: { type: "string" },
  rescan: { type: "string" },
  chunks: { type: "string" },
  "allow-mass-delete": { type: "boolean" },
  dir: { type: "string" },
  tag: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;
const FILE = "/x/.filesync/config.json";

function merge(text: string | null, values: Record<string, OptionValue> = {}) {
  return mergeConfig({
    options: OPTIONS,
    values,
    file: FILE,
    text,
    command: "filesync client",
    refuse: { dir: "it is found through --dir" },
    paths: ["ca", "chunks"],
  });
}

Deno.test("mergeConfig() takes the file's values where the command line gives none, and the command line wins", () => {
  const cases: {
    text: string | null;
    values?: Record<string, OptionValue>;
    want: Record<string, OptionValue>;
  }[] = [
    { text: null, values: { server: "a:1" }, want: { server: "a:1" } },
    { text: "{}", want: {} },
    { text: '{"server": "h:8443", "rescan": 5}', want: { server: "h:8443", rescan: "5" } },
    { text: '{"server": "h:8443"}', values: { server: "cli:1" }, want: { server: "cli:1" } },
    { text: '{"rescan": 2.5}', want: { rescan: "2.5" } },
    { text: '{"allow-mass-delete": true}', want: { "allow-mass-delete": true } },
    {
      text: '{"allow-mass-delete": true}',
      values: { "allow-mass-delete": false },
      want: { "allow-mass-delete": false },
    },
    { text: '{"ca": "ca.pem"}', want: { ca: "/x/.filesync/ca.pem" } },
    { text: '{"ca": "/etc/ca.pem"}', want: { ca: "/etc/ca.pem" } },
    { text: '{"chunks": "file:///srv/chunks"}', want: { chunks: "file:///srv/chunks" } },
    { text: '{"ca": "ca.pem"}', values: { ca: "mine.pem" }, want: { ca: "mine.pem" } },
    { text: '{"tag": ["a", 1]}', want: { tag: ["a", "1"] } },
    { text: '{"tag": "a"}', want: { tag: ["a"] } },
    { text: '{"tag": ["a", "b"]}', values: { tag: ["c"] }, want: { tag: ["c"] } },
    {
      text: '{"tag": ["a", "b"], "rescan": 1}',
      values: { tag: undefined },
      want: { tag: ["a", "b"], rescan: "1" },
    },
    { text: '\ufeff{"rescan": "7"}', want: { rescan: "7" } },
  ];
  for (const { text, values, want } of cases) {
    assert.deepEqual({ ...merge(text, values).values }, want, String(text));
  }
});

Deno.test("mergeConfig() says which options came from the file", () => {
  const merged = merge('{"server": "h:1", "rescan": 3}', { server: "c:2" });
  assert.deepEqual([...merged.fromFile], ["rescan"]);
});

Deno.test("mergeConfig() refuses a bad file with one line naming the file and the key", () => {
  const cases: [string, string][] = [
    ['{"rescan": {}}', `${FILE}: "rescan" must be a number or a string, not an object`],
    ['{"rescan": [1]}', `${FILE}: "rescan" must be a number or a string, not an array`],
    ['{"server": null}', `${FILE}: "server" must be a number or a string, not null`],
    ['{"server": true}', `${FILE}: "server" must be a number or a string, not true`],
    [
      '{"allow-mass-delete": "yes"}',
      `${FILE}: "allow-mass-delete" must be true or false, not a string ("yes")`,
    ],
    ['{"allow-mass-delete": 1}', `${FILE}: "allow-mass-delete" must be true or false, not the number 1`],
    ['{"tag": [{}]}', `${FILE}: "tag" must be a number or a string, or a list of them, not an object`],
    ['{"tag": null}', `${FILE}: "tag" must be a number or a string, or a list of them, not null`],
    ['{"tag": [["a"]]}', `${FILE}: "tag" must be a number or a string, or a list of them, not an array`],
    ['{"tag": []}', `${FILE}: "tag" is an empty list: give at least one value, or leave "tag" out`],
    [
      '{"sever": "h:1"}',
      `${FILE}: "sever" is not an option of filesync client (keys are long option names; see filesync client --help)`,
    ],
    [
      '{"password": "x"}',
      `${FILE}: "password" cannot be set here: passwords are never kept in files: set ` +
      "FILESYNC_PASSWORD, pipe it on standard input or type it when asked",
    ],
    ['{"dir": "/y"}', `${FILE}: "dir" cannot be set here: it is found through --dir`],
    ['{"help": true}', `${FILE}: "help" cannot be set here: it is not a setting`],
    [
      '{"toString": 1}',
      `${FILE}: "toString" is not an option of filesync client (keys are long option names; ` +
      "see filesync client --help)",
    ],
    ["[1, 2]", `${FILE}: must hold one JSON object ({"option": value, …}), not an array`],
    ['"x"', `${FILE}: must hold one JSON object ({"option": value, …}), not a string ("x")`],
    ["", `${FILE}: not valid JSON at the end: Unexpected end of JSON input`],
    ['{"server": "h:1"', `${FILE}: not valid JSON at the end: Expected ',' or '}' after property value`],
    ['{"server": }', `${FILE}: not valid JSON at line 1, column 12: Unexpected token '}'`],
    [
      '{\n  "a": 1,\n  "b" 2\n}',
      `${FILE}: not valid JSON at line 3, column 7: Expected ':' after property name`,
    ],
    [
      '{"a": 1} x',
      `${FILE}: not valid JSON at line 1, column 10: Unexpected non-whitespace character after JSON`,
    ],
    ["{'a': 1}", `${FILE}: not valid JSON at line 1, column 2: Expected property name or '}'`],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => merge(text),
      (error) => error instanceof UsageError && error.message === message,
      text,
    );
  }
});

Deno.test("blameConfig() names the file for an error about an option the file gave, and only then", () => {
  const merged = merge('{"rescan": "soon"}', { server: "bad" });
  const blamed = blameConfig(new UsageError('Invalid --rescan "soon": give a number of seconds'), merged);
  assert.ok(blamed instanceof UsageError);
  assert.equal(blamed.message, `${FILE}: "rescan": Invalid --rescan "soon": give a number of seconds`);
  const own = new UsageError('Invalid --server "bad"');
  assert.deepEqual(blameConfig(own, merged), own);
  const other = new Error("--rescan");
  assert.deepEqual(blameConfig(other, merged), other);
});

Deno.test("loadConfig() reads the file, takes a missing one as empty, and refuses a private one others can read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/config.json`;
    const load = (priv: boolean) =>
      loadConfig({ options: OPTIONS, values: {}, file, command: "filesync server", private: priv });
    assert.deepEqual({ ...(await load(true)).values }, {});
    await Deno.writeTextFile(`${dir}/a-file`, "");
    const under = await loadConfig({
      options: OPTIONS,
      values: {},
      file: `${dir}/a-file/config.json`,
      command: "c",
    });
    assert.deepEqual({ ...under.values }, {}, "a file where the folder should be: no config");
    await Deno.writeTextFile(file, '{"rescan": 4}', { mode: 0o644 });
    await Deno.chmod(file, 0o644);
    assert.deepEqual((await load(false)).values.rescan, "4");
    if (Deno.build.os !== "windows") {
      const error = await load(true).then(() => null, (e) => e);
      assert.ok(error instanceof UserError);
      assert.equal(
        error.message,
        `${file}: other users may read or change it (mode 0644); it may hold credentials: chmod 600 it`,
      );
      await Deno.chmod(file, 0o600);
      assert.deepEqual((await load(true)).values.rescan, "4");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
