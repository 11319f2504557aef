// Tests for the S3 chunk store: URL and key parsing (s3_location.ts) always; the ChunkStore contract and S3
// details against a real S3 server (radosgw) when FILESYNC_TEST_S3 names one (tests/services/radosgw.sh).

import assert from "node:assert/strict";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { UserError } from "../protocol/user_error.ts";
import { ChunkCipher, ChunkDamagedError } from "./chunk_cipher.ts";
import { DiskChunkStore, ENCRYPTION_FILE, openChunkStore, WrongKeyError } from "./chunk_store.ts";
import { chunk, chunkStoreContract, collect } from "./chunk_store_contract.ts";
import { S3ChunkStore } from "./chunk_store_s3.ts";
import { parseS3Spec, s3Credentials, type S3Location } from "./s3_location.ts";
import {
  freshPrefix,
  keysBelow,
  removePrefix,
  type TestS3,
  testS3,
  testS3Client,
  testS3Url,
} from "../tests/services/s3_env.ts";

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";

/** Runs `fn` with the AWS key variables set as given (unset when undefined), restoring them afterwards. */
async function withAwsEnv(
  env: { id?: string; secret?: string; token?: string },
  fn: () => unknown,
): Promise<void> {
  const names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
  const saved = names.map((name) => Deno.env.get(name));
  const set = (name: string, value: string | undefined) =>
    value === undefined ? Deno.env.delete(name) : Deno.env.set(name, value);
  [env.id, env.secret, env.token].forEach((value, i) => set(names[i], value));
  try {
    await fn();
  } finally {
    saved.forEach((value, i) => set(names[i], value));
  }
}

Deno.test("parseS3Spec() reads bucket, prefix, endpoint and region", () => {
  assert.deepEqual(parseS3Spec("s3://chunks/team/a?endpoint=http://127.0.0.1:7480&region=eu-west-1"), {
    bucket: "chunks",
    prefix: "team/a/",
    endpoint: "http://127.0.0.1:7480",
    region: "eu-west-1",
  });
  assert.deepEqual(parseS3Spec("s3://chunks"), {
    bucket: "chunks",
    prefix: "",
    endpoint: undefined,
    region: "us-east-1",
  });
});

Deno.test("parseS3Spec() refuses keys in the URL or its endpoint without repeating them", () => {
  for (
    const spec of [
      `s3://AKIAEXAMPLE:${SECRET}@chunks/p`,
      `s3://chunks/p?endpoint=${encodeURIComponent(`http://AKIAEXAMPLE:${SECRET}@127.0.0.1:7480`)}`,
    ]
  ) {
    assert.throws(() => parseS3Spec(spec), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /must not carry keys .*AWS_ACCESS_KEY_ID/);
      assert.ok(!error.message.includes(SECRET), error.message);
      return true;
    });
  }
});

Deno.test("parseS3Spec() refuses a bad bucket, an unknown parameter and a bad endpoint in one line", () => {
  assert.throws(() => parseS3Spec("s3://Bad_Bucket/p"), /Invalid bucket "bad_bucket"|Invalid bucket/);
  assert.throws(() => parseS3Spec(`s3://chunks/p?secret=${SECRET}`), /Unknown parameter "secret"/);
  assert.throws(() => parseS3Spec("s3://chunks/p?endpoint=ftp://host"), /Invalid endpoint/);
});

Deno.test("s3Credentials(): the environment wins, the config file otherwise, both keys or a clear line", async () => {
  await withAwsEnv({ id: "ENVID", secret: "envsecret" }, () => {
    assert.deepEqual(s3Credentials({ accessKeyId: "FILEID", secretAccessKey: "filesecret" }), {
      accessKeyId: "ENVID",
      secretAccessKey: "envsecret",
    });
  });
  await withAwsEnv({}, () => {
    assert.deepEqual(s3Credentials({ accessKeyId: "FILEID", secretAccessKey: "filesecret" }), {
      accessKeyId: "FILEID",
      secretAccessKey: "filesecret",
    });
    assert.throws(() => s3Credentials({}), /needs keys: set AWS_ACCESS_KEY_ID/);
    assert.throws(() => s3Credentials({ accessKeyId: "FILEID" }), /needs both s3-access-key-id/);
  });
  await withAwsEnv({ id: "ENVID", secret: "envsecret", token: "tok" }, () => {
    assert.deepEqual(s3Credentials({}), {
      accessKeyId: "ENVID",
      secretAccessKey: "envsecret",
      sessionToken: "tok",
    });
  });
  await withAwsEnv({ id: "ENVID" }, () => {
    assert.throws(() => s3Credentials({}), /Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  });
});

Deno.test("openChunkStore(): an S3 endpoint nobody listens on is one line at open", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    openChunkStore(`s3://chunks/p?endpoint=http://127.0.0.1:${port}`, {
      cipher: new ChunkCipher(KEY),
      s3Credentials: { accessKeyId: "ID", secretAccessKey: SECRET },
    }),
    (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(
        error.message,
        new RegExp(`^Cannot reach the S3 endpoint http://127\\.0\\.0\\.1:${port}: `),
      );
      assert.ok(!error.message.includes("\n") && !error.message.includes(SECRET), error.message);
      return true;
    },
  );
});

const s3 = testS3();
if (s3) registerS3Tests(s3);

/** The tests that need a real S3 server. */
function registerS3Tests(s3: TestS3) {
  const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const location = (prefix: string): S3Location => ({
    bucket: s3.bucket,
    prefix,
    endpoint: s3.endpoint,
    region: s3.region,
  });

  /** Runs `fn` with an opened store on a fresh prefix, removed afterwards. */
  async function withS3Store(
    fn: (store: S3ChunkStore, prefix: string) => Promise<void>,
    cipher?: ChunkCipher,
  ): Promise<void> {
    const prefix = freshPrefix("contract");
    const store = new S3ChunkStore(location(prefix), { credentials, cipher });
    try {
      await store.open();
      await fn(store, prefix);
    } finally {
      store.close();
      await removePrefix(s3, prefix);
    }
  }

  chunkStoreContract("S3ChunkStore (plaintext, tests only)", (fn) => withS3Store((store) => fn(store)));
  chunkStoreContract(
    "S3ChunkStore (encrypted)",
    (fn) => withS3Store((store) => fn(store), new ChunkCipher(KEY)),
  );

  Deno.test("S3ChunkStore: objects are named and encrypted as the disk store's files (a copy of one is the other)", async () => {
    const cipher = new ChunkCipher(KEY);
    const a = chunk("the same format on disk and in the bucket");
    const dir = await Deno.makeTempDir({ prefix: "filesync-s3-" });
    const client = testS3Client(s3);
    const prefix = freshPrefix("format");
    try {
      const disk = new DiskChunkStore(join(dir, "chunks"), { cipher });
      await disk.open();
      await disk.put(a.id, a.data);
      // Upload the folder's files as they are, under the prefix.
      const name = cipher.nameOf(a.id);
      for (const rel of [ENCRYPTION_FILE, `${name.slice(0, 2)}/${name}`]) {
        const body = await Deno.readFile(join(dir, "chunks", rel));
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: prefix + rel, Body: body }));
      }
      const store = new S3ChunkStore(location(prefix), { credentials, cipher });
      try {
        await store.open();
        assert.deepEqual(await store.get(a.id), a.data);
        assert.deepEqual(await collect(store.list()), [a.id]);
        const b = chunk("written to the bucket");
        await store.put(b.id, b.data);
        const keys = await keysBelow(client, s3.bucket, prefix);
        const bName = cipher.nameOf(b.id);
        assert.ok(keys.includes(`${prefix}${bName.slice(0, 2)}/${bName}`), keys.join(" "));
        for (const key of keys) {
          assert.ok(!key.includes(a.id) && !key.includes(b.id), `${key} names a chunk id`);
          const reply = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
          const text = new TextDecoder().decode(await reply.Body!.transformToByteArray());
          assert.ok(!text.includes("the same format") && !text.includes("written to the bucket"), key);
        }
      } finally {
        store.close();
      }
    } finally {
      client.destroy();
      await Deno.remove(dir, { recursive: true });
      await removePrefix(s3, prefix);
    }
  });

  Deno.test("S3ChunkStore: a damaged or truncated object reads as damaged, and a later put heals it", async () => {
    await withS3Store(async (store, prefix) => {
      const cipher = new ChunkCipher(KEY);
      const a = chunk("to be damaged");
      await store.put(a.id, a.data);
      const client = testS3Client(s3);
      try {
        const name = cipher.nameOf(a.id);
        const key = `${prefix}${name.slice(0, 2)}/${name}`;
        const reply = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        const stored = await reply.Body!.transformToByteArray();
        stored[stored.length - 1] ^= 1;
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: stored }));
        await assert.rejects(store.get(a.id), ChunkDamagedError);
        await store.put(a.id, a.data);
        assert.deepEqual(await store.get(a.id), a.data, "the same-sized damaged copy was replaced");
        await client.send(
          new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: stored.subarray(0, 10) }),
        );
        assert.equal(await store.size(a.id), null, "too short to be a chunk: counts as missing");
        await store.put(a.id, a.data);
        assert.equal(await store.size(a.id), a.data.length);
      } finally {
        client.destroy();
      }
    }, new ChunkCipher(KEY));
  });

  Deno.test("S3ChunkStore: a wrong master key is refused at open; a plaintext store refuses the prefix", async () => {
    await withS3Store(async (_store, prefix) => {
      const other = new S3ChunkStore(location(prefix), { credentials, cipher: new ChunkCipher(OTHER_KEY) });
      const plain = new S3ChunkStore(location(prefix), { credentials });
      try {
        await assert.rejects(other.open(), WrongKeyError);
        await assert.rejects(plain.open(), /is encrypted: it opens only with the master key/);
      } finally {
        other.close();
        plain.close();
      }
    }, new ChunkCipher(KEY));
  });

  Deno.test("S3ChunkStore: nodes opening a new prefix at once write one key check; another key loses", async () => {
    const prefix = freshPrefix("race");
    const stores = [KEY, KEY, KEY, OTHER_KEY].map((key) =>
      new S3ChunkStore(location(prefix), { credentials, cipher: new ChunkCipher(key) })
    );
    try {
      const results = await Promise.allSettled(stores.map((store) => store.open()));
      // Either the three with KEY open and OTHER_KEY is refused, or OTHER_KEY won and the three are refused.
      const otherWon = results[3].status === "fulfilled";
      for (const [i, result] of results.entries()) {
        const shouldOpen = otherWon ? i === 3 : i < 3;
        assert.equal(result.status, shouldOpen ? "fulfilled" : "rejected", `store ${i}`);
        if (result.status === "rejected") {
          assert.ok(result.reason instanceof WrongKeyError, String(result.reason));
        }
      }
    } finally {
      for (const store of stores) store.close();
      await removePrefix(s3, prefix);
    }
  });

  Deno.test("S3ChunkStore: chunks of another key without a key check are refused, not adopted", async () => {
    await withS3Store(async (store, prefix) => {
      const a = chunk("another key's");
      await store.put(a.id, a.data);
      await removePrefix(s3, `${prefix}${ENCRYPTION_FILE}`);
      const other = new S3ChunkStore(location(prefix), { credentials, cipher: new ChunkCipher(OTHER_KEY) });
      const same = new S3ChunkStore(location(prefix), { credentials, cipher: new ChunkCipher(KEY) });
      try {
        await assert.rejects(
          other.open(),
          /not encrypted with this key, and its encryption\.json is missing/,
        );
        await same.open();
        assert.deepEqual(await same.get(a.id), a.data, "its own key writes the key check again");
      } finally {
        other.close();
        same.close();
      }
    }, new ChunkCipher(KEY));
  });

  Deno.test("openChunkStore(): a missing bucket and wrong keys are one line each, naming the cause", async () => {
    const cipher = new ChunkCipher(KEY);
    const query = new URLSearchParams({ endpoint: s3.endpoint, region: s3.region });
    await assert.rejects(
      openChunkStore(`s3://no-such-bucket-${crypto.randomUUID().slice(0, 8)}/p?${query}`, {
        cipher,
        s3Credentials: credentials,
      }),
      /^UserError: Bucket "no-such-bucket-[0-9a-f]+" does not exist at http:.*: create it first/,
    );
    await withAwsEnv({}, async () => {
      await assert.rejects(
        openChunkStore(testS3Url(s3, freshPrefix("keys")), {
          cipher,
          s3Credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: "wrong" + SECRET },
        }),
        (error: Error) => {
          assert.match(error.message, /refused the keys for bucket .* \(HTTP 403\): check AWS_ACCESS_KEY_ID/);
          assert.ok(!error.message.includes(SECRET));
          return true;
        },
      );
    });
  });
}
