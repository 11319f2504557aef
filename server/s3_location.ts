// Where an S3 chunk store is (`s3://BUCKET/PREFIX?endpoint=URL&region=REGION`) and the keys it opens with.
import { UserError } from "../protocol/user_error.ts";

/** Where an `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` chunk store is. */
export interface S3Location {
  /** The bucket. */
  bucket: string;
  /** The key prefix every object of the store starts with: "" or ending in "/". */
  prefix: string;
  /** The S3 endpoint, e.g. `http://127.0.0.1:7480`; undefined for AWS's own (by region). */
  endpoint?: string;
  /** The region requests are signed for. @default "us-east-1" */
  region: string;
}

/** The keys an S3 store is opened with. */
export interface S3Credentials {
  /** AWS_ACCESS_KEY_ID or the config file's `s3-access-key-id`. */
  accessKeyId: string;
  /** AWS_SECRET_ACCESS_KEY or the config file's `s3-secret-access-key`. */
  secretAccessKey: string;
  /** AWS_SESSION_TOKEN, for temporary keys (environment only). */
  sessionToken?: string;
}

/** A store URL without what must not be shown (there is nothing secret in an accepted one). */
export function s3Where(location: S3Location): string {
  return `s3://${location.bucket}/${location.prefix}`;
}

/**
 * Parses `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`. A URL that carries keys (`s3://KEY:SECRET@…`, or an
 * endpoint with them) is refused without repeating it: keys on a command line show in `ps` and in logs.
 */
export function parseS3Spec(spec: string): S3Location {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new UserError(`Invalid chunk store URL: use s3://BUCKET/PREFIX?endpoint=URL&region=REGION`);
  }
  const keysInUrl = new UserError(
    "The chunk store URL must not carry keys (they would show in ps and logs): set AWS_ACCESS_KEY_ID and " +
      "AWS_SECRET_ACCESS_KEY, or s3-access-key-id and s3-secret-access-key in DATA/config.json",
  );
  if (url.username || url.password) throw keysInUrl;
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UserError(
      `Invalid bucket "${bucket}" in the chunk store URL: 3 to 63 of a-z, 0-9, "." and "-"`,
    );
  }
  let prefix = decodeURIComponent(url.pathname).replace(/^\/+/, "");
  if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
  let endpoint: string | undefined;
  let region = "us-east-1";
  for (const [key, value] of url.searchParams) {
    if (key === "endpoint") {
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        throw new UserError(`Invalid endpoint in the chunk store URL: use http(s)://HOST:PORT`);
      }
      if (parsed.username || parsed.password) throw keysInUrl;
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        throw new UserError(`Invalid endpoint "${value}" in the chunk store URL: use http(s)://HOST:PORT`);
      }
      endpoint = parsed.origin;
    } else if (key === "region") {
      if (!/^[a-z0-9-]+$/i.test(value)) {
        throw new UserError(`Invalid region "${value}" in the chunk store URL`);
      }
      region = value;
    } else {
      throw new UserError(
        `Unknown parameter "${key}" in the chunk store URL: only endpoint and region (keys go in the environment or DATA/config.json)`,
      );
    }
  }
  return { bucket, prefix, endpoint, region };
}

/**
 * The keys of an S3 store: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set (like the
 * command line, the environment wins), else the config file's. Both or neither; none at all is a one-line error.
 */
export function s3Credentials(fromConfig: Partial<S3Credentials> = {}): S3Credentials {
  // Set but empty counts as unset.
  const envId = Deno.env.get("AWS_ACCESS_KEY_ID") || undefined;
  const envSecret = Deno.env.get("AWS_SECRET_ACCESS_KEY") || undefined;
  if (envId !== undefined || envSecret !== undefined) {
    if (!envId || !envSecret) {
      throw new UserError("Set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the S3 chunk store");
    }
    const sessionToken = Deno.env.get("AWS_SESSION_TOKEN") || undefined;
    return { accessKeyId: envId, secretAccessKey: envSecret, ...(sessionToken ? { sessionToken } : {}) };
  }
  const { accessKeyId, secretAccessKey } = fromConfig;
  if (accessKeyId && secretAccessKey) return { accessKeyId, secretAccessKey }; // a session token expires: not in a file
  if (accessKeyId || secretAccessKey) {
    throw new UserError("DATA/config.json needs both s3-access-key-id and s3-secret-access-key");
  }
  throw new UserError(
    "The S3 chunk store needs keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or s3-access-key-id and " +
      "s3-secret-access-key in DATA/config.json (mode 0600)",
  );
}
