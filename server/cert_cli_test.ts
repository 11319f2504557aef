// Tests for `filesync server cert`: the files it writes, and one clear line for each bad call.
import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { ensureServerCertificate } from "../certs/ca.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { certCommand, certPaths } from "./cert_cli.ts";

async function withCa(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync_cert_cli_test_" });
  try {
    await ensureServerCertificate(join(dir, "data"));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("certPaths() takes --out as a prefix, or as a folder named by the first host name", async () => {
  await withCa(async (dir) => {
    assert.deepEqual(await certPaths(join(dir, "n2"), "x"), {
      cert: join(dir, "n2.pem"),
      key: join(dir, "n2-key.pem"),
    });
    assert.deepEqual(await certPaths(join(dir, "n2.pem"), "x"), {
      cert: join(dir, "n2.pem"),
      key: join(dir, "n2-key.pem"),
    });
    assert.deepEqual(await certPaths(dir, "node2.example.org"), {
      cert: join(dir, "node2.example.org.pem"),
      key: join(dir, "node2.example.org-key.pem"),
    });
    assert.deepEqual(await certPaths(`${dir}/new/`, "::1"), {
      cert: join(dir, "new", "__1.pem"),
      key: join(dir, "new", "__1-key.pem"),
    });
  });
});

Deno.test("filesync server cert writes a CA-signed certificate and a 0600 key, and never replaces them", async () => {
  await withCa(async (dir) => {
    const data = join(dir, "data");
    const out = join(dir, "node2");
    assert.equal(
      await certCommand(["--data", data, "--name", "node2.lan", "--name", "lb.lan", "--out", out]),
      0,
    );
    const leaf = new x509.X509Certificate(await Deno.readTextFile(`${out}.pem`));
    const ca = new x509.X509Certificate(await Deno.readTextFile(join(data, "certs", "ca.pem")));
    assert.ok(await leaf.verify({ publicKey: ca, signatureOnly: true }));
    assert.equal(leaf.subject, "CN=node2.lan");
    assert.match(await Deno.readTextFile(`${out}-key.pem`), /^-----BEGIN PRIVATE KEY-----\n/);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(`${out}-key.pem`)).mode! & 0o777, 0o600);
    const before = await Deno.readTextFile(`${out}-key.pem`);
    await assert.rejects(
      () => certCommand(["--data", data, "--name", "node2.lan", "--out", out]),
      (error: Error) =>
        error instanceof UserError &&
        error.message === `"${out}.pem" already exists: remove it first, or give another --out`,
    );
    assert.equal(await Deno.readTextFile(`${out}-key.pem`), before);
    // A folder (a path ending in /) is made if missing; the files are named after the first --name.
    assert.equal(await certCommand(["--data", data, "--name", "node3.lan", "--out", `${dir}/nodes/`]), 0);
    assert.ok((await Deno.stat(join(dir, "nodes", "node3.lan.pem"))).isFile);
    assert.ok((await Deno.stat(join(dir, "nodes", "node3.lan-key.pem"))).isFile);
  });
});

Deno.test("filesync server cert refuses bad calls with one line and writes nothing", async () => {
  await withCa(async (dir) => {
    const data = join(dir, "data");
    const out = join(dir, "n");
    const cases: [string[], typeof UserError, string | RegExp][] = [
      [["--name", "a", "--out", out], UsageError, "Missing --data (see filesync server cert --help)"],
      [["--data", data, "--out", out], UsageError, "Missing --name (see filesync server cert --help)"],
      [["--data", data, "--name", "a"], UsageError, "Missing --out (see filesync server cert --help)"],
      [
        ["--data", data, "--name", "a b", "--out", out],
        UsageError,
        'Invalid --name "a b": not a DNS name or IP address',
      ],
      [["--data", join(dir, "none"), "--name", "a", "--out", out], UserError, /^No CA in ".*none\/certs": /],
    ];
    for (const [args, kind, message] of cases) {
      await assert.rejects(
        () => certCommand(args),
        (error: Error) =>
          error instanceof kind &&
          (typeof message === "string" ? error.message === message : message.test(error.message)),
        args.join(" "),
      );
    }
    const left = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left, ["data"]);
  });
});
