// The S3 server tests use when FILESYNC_TEST_S3 names one: the env file tests/services/radosgw.sh writes.
import {
  DeleteObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from "@aws-sdk/client-s3";

/** An S3 server for tests: FILESYNC_TEST_S3 is the path of an env file of these (KEY=VALUE lines). */
export interface TestS3 {
  /** S3_ENDPOINT, e.g. `http://127.0.0.1:40123`. */
  endpoint: string;
  /** S3_REGION. */
  region: string;
  /** S3_BUCKET: an existing bucket tests write below fresh prefixes of. */
  bucket: string;
  /** AWS_ACCESS_KEY_ID. */
  accessKeyId: string;
  /** AWS_SECRET_ACCESS_KEY. */
  secretAccessKey: string;
}

/** The test S3 server FILESYNC_TEST_S3 names, or null when it is unset (S3 tests are then not registered). */
export function testS3(): TestS3 | null {
  const file = Deno.env.get("FILESYNC_TEST_S3");
  if (!file) return null;
  const vars = new Map<string, string>();
  for (const line of Deno.readTextFileSync(file).split("\n")) {
    const match = /^\s*(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) vars.set(match[1], match[2].trim().replace(/^"(.*)"$/, "$1"));
  }
  const need = (key: string) => {
    const value = vars.get(key);
    if (!value) throw new Error(`FILESYNC_TEST_S3 file ${file} lacks ${key}`);
    return value;
  };
  return {
    endpoint: need("S3_ENDPOINT"),
    region: vars.get("S3_REGION") ?? "us-east-1",
    bucket: need("S3_BUCKET"),
    accessKeyId: need("AWS_ACCESS_KEY_ID"),
    secretAccessKey: need("AWS_SECRET_ACCESS_KEY"),
  };
}

/** A fresh key prefix for one test (ending in "/"). */
export function freshPrefix(label: string): string {
  return `${label}-${crypto.randomUUID()}/`;
}

/** The `--chunks` URL of a prefix of the test bucket. */
export function testS3Url(s3: TestS3, prefix: string): string {
  const query = new URLSearchParams({ endpoint: s3.endpoint, region: s3.region });
  return `s3://${s3.bucket}/${prefix}?${query}`;
}

/** A plain SDK client of the test server (for looking into the bucket behind a store's back). */
export function testS3Client(s3: TestS3): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Every object key below `prefix`. */
export async function keysBelow(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) keys.push(object.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

/** Removes every object below `prefix` (what a test wrote). */
export async function removePrefix(s3: TestS3, prefix: string): Promise<void> {
  const client = testS3Client(s3);
  try {
    const keys = await keysBelow(client, s3.bucket, prefix);
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(
        keys.slice(i, i + 16).map((key) =>
          client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }))
        ),
      );
    }
  } finally {
    client.destroy();
  }
}
