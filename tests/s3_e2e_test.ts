// End-to-end: a server with its chunks in a real S3 bucket (radosgw; only when FILESYNC_TEST_S3 names one)
// syncs, stores only ciphertext there, serves again after a restart, and gc and fsck work on the bucket.
import assert from "node:assert/strict";
import { join } from "node:path";
import { GetObjectCommand, type GetObjectCommandOutput } from "@aws-sdk/client-s3";
import { sha256Hex } from "../protocol/hash.ts";
import { ChunkCipher } from "../server/chunk_cipher.ts";
import { S3ChunkStore } from "../server/chunk_store_s3.ts";
import { defaultMasterKeyPath, readMasterKey } from "../server/master_key.ts";
import { addUser, randomBytes, run, startConnectedClient, startServer, TempDir, waitFor } from "./harness.ts";
import { freshPrefix, keysBelow, removePrefix, testS3, testS3Client, testS3Url } from "./services/s3_env.ts";

const s3 = testS3();
if (s3) {
  Deno.test("a server on S3 chunks syncs, keeps only ciphertext in the bucket, restarts, and gc and fsck work", async () => {
    await using tmp = new TempDir();
    const prefix = freshPrefix("e2e");
    const client = testS3Client(s3);
    try {
      const data = tmp.join("server");
      await Deno.mkdir(data, { recursive: true });
      // Keys in the private config file: not on the command line, not in the environment.
      await Deno.writeTextFile(
        join(data, "config.json"),
        JSON.stringify({
          chunks: testS3Url(s3, prefix),
          "s3-access-key-id": s3.accessKeyId,
          "s3-secret-access-key": s3.secretAccessKey,
        }),
        { mode: 0o600 },
      );
      const env = { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
      const content = randomBytes(3 * 1024 * 1024 + 12345, 11);
      {
        await using server = await startServer(data, [], 0, env);
        assert.match(server.output, new RegExp(`chunks in s3://${s3.bucket}/${prefix}\n`));
        assert.ok(!server.output.includes(s3.secretAccessKey), "the secret is not logged");
        await addUser(data, "alice", "pw");
        const login = { server, user: "alice", password: "pw" };
        await using a = await startConnectedClient({ ...login, dir: tmp.join("a"), device: "A" });
        await using _b = await startConnectedClient({ ...login, dir: tmp.join("b"), device: "B" });
        await Deno.writeFile(tmp.join("a", "big.bin"), content);
        await waitFor(async () => {
          try {
            return sha256Hex(await Deno.readFile(tmp.join("b", "big.bin"))) === sha256Hex(content);
          } catch {
            return false;
          }
        }, { timeoutMs: 30_000, message: () => a.output });
      }
      // In the bucket: the key check and chunk objects, none of them holding a piece of the file.
      const keys = await keysBelow(client, s3.bucket, prefix);
      assert.ok(keys.includes(`${prefix}encryption.json`), keys.join(" "));
      assert.ok(keys.length >= 2, keys.join(" "));
      const needles = [0, 1 << 20, content.length - 64].map((at) => content.subarray(at, at + 32));
      for (const key of keys) {
        const reply: GetObjectCommandOutput = await client.send(
          new GetObjectCommand({ Bucket: s3.bucket, Key: key }),
        );
        const bytes: Buffer = Buffer.from(await reply.Body!.transformToByteArray());
        for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${key} holds plaintext`);
      }
      await assert.rejects(Deno.stat(join(data, "chunks")), Deno.errors.NotFound, "no chunk on disk");

      // Restarted, the server serves the file to a new device.
      {
        await using server = await startServer(data, [], 0, env);
        await using c = await startConnectedClient({
          server,
          user: "alice",
          password: "pw",
          dir: tmp.join("c"),
          device: "C",
        });
        await waitFor(async () => {
          try {
            return (await Deno.stat(tmp.join("c", "big.bin"))).size === content.length;
          } catch {
            return false;
          }
        }, { timeoutMs: 30_000, message: () => c.output });
        assert.equal(sha256Hex(await Deno.readFile(tmp.join("c", "big.bin"))), sha256Hex(content));
      }

      // gc lists, reads and deletes in the bucket: an orphan chunk goes, the file's stay; fsck reads them all.
      const masterKey = (await readMasterKey(defaultMasterKeyPath(data)))!;
      const store = new S3ChunkStore(
        { bucket: s3.bucket, prefix, endpoint: s3.endpoint, region: s3.region },
        { credentials: s3, cipher: new ChunkCipher(masterKey) },
      );
      const orphan = new TextEncoder().encode("nobody refers to this chunk");
      try {
        await store.open();
        await store.put(sha256Hex(orphan), orphan);
      } finally {
        store.close();
      }
      const gc = await run(["gc", "--data", data], { env });
      assert.equal(gc.code, 0, gc.output);
      assert.match(gc.output, /removed 1 chunks, .*; [1-9]\d* chunks in use/);
      assert.equal((await keysBelow(client, s3.bucket, prefix)).length, keys.length, "only the orphan went");
      const fsck = await run(["server", "fsck", "--data", data], { env });
      assert.equal(fsck.code, 0, fsck.output);
      assert.match(fsck.output, /^fsck: clean \(.*[1-9]\d* chunks\)\n$/);
    } finally {
      client.destroy();
      await removePrefix(s3, prefix);
    }
  });
}

Deno.test("filesync server refuses an S3 chunk store URL that carries keys, in one line without them", async () => {
  await using tmp = new TempDir();
  const secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
  const { code, output } = await run([
    "server",
    "--data",
    tmp.join("server"),
    "--port",
    "0",
    "--chunks",
    `s3://AKIAEXAMPLE:${secret}@chunks/team?endpoint=http://127.0.0.1:9`,
  ]);
  assert.equal(code, 1, output);
  assert.match(output, /^filesync: .*The chunk store URL must not carry keys .*AWS_ACCESS_KEY_ID.*\n$/);
  assert.ok(!output.includes(secret), output);
  const flag = await run([
    "server",
    "--data",
    tmp.join("server"),
    "--port",
    "0",
    "--s3-secret-access-key",
    secret,
  ]);
  assert.equal(flag.code, 2, "the keys are no command-line option: " + flag.output);
  assert.match(
    flag.output,
    /^filesync: --s3-secret-access-key is refused on the command line .*DATA\/config\.json/,
  );
  assert.ok(!flag.output.includes(secret), flag.output);
});
