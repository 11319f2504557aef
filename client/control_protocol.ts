// The control socket's language: one JSON object per line each way; requests checked here, replies typed here.

/** Longest request line a running client reads (a longer one gets an error reply and the connection closes). */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Longest reply line a command reads (a status or a server reply; the server's own frames are smaller). */
export const MAX_REPLY_BYTES = 32 * 1024 * 1024;

/**
 * The server requests a command may forward over the running client's connection (`rpc`): the history, share,
 * lock and device commands' requests, nothing that would change the client's own session.
 */
export const FORWARDED_OPS: ReadonlySet<string> = new Set([
  "VERSIONS",
  "TRASH",
  "RESTORE",
  "SHARE",
  "UNSHARE",
  "SHARES",
  "LOCK",
  "UNLOCK",
  "LOCKS",
  "DEVICES",
]);

/** A request to a running client. */
export type ControlRequest =
  /** What the client is doing now (a {@linkcode StatusReport} of client/status.ts). */
  | { op: "status" }
  /** Every event from now on, one JSON line each, until the peer closes. */
  | { op: "follow" }
  | { op: "pause" }
  | { op: "resume" }
  /** Where the namespaces show in the folder (for commands that forward requests). */
  | { op: "mounts" }
  /** One server request sent over the client's connection; the reply's message comes back. */
  | { op: "rpc"; request: string; body: Record<string, unknown> };

/** An error reply: `code` as the server's (`offline` when the client is not connected), for forwarded requests. */
export interface ControlError {
  ok: false;
  error: string;
  code?: string;
  detail?: Record<string, unknown>;
}

/** A request line that cannot be used: the message is the error reply's. */
export class ControlRequestError extends Error {
  override name = "ControlRequestError";
}

const OPS = new Set(["status", "follow", "pause", "resume", "mounts", "rpc"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses one request line; throws {@linkcode ControlRequestError} for anything else than a known request.
 *
 * @example
 * ```ts
 * parseControlRequest('{"op":"rpc","request":"LOCKS","body":{}}'); // { op: "rpc", request: "LOCKS", body: {} }
 * ```
 */
export function parseControlRequest(line: string): ControlRequest {
  if (new TextEncoder().encode(line).length > MAX_REQUEST_BYTES) {
    throw new ControlRequestError(`request too large (more than ${MAX_REQUEST_BYTES} bytes)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlRequestError("request is not JSON");
  }
  if (!isObject(value)) throw new ControlRequestError("request is not a JSON object");
  const op = value.op;
  if (typeof op !== "string" || !OPS.has(op)) {
    throw new ControlRequestError(`unknown request ${JSON.stringify(op ?? null).slice(0, 40)}`);
  }
  if (op !== "rpc") return { op } as ControlRequest;
  const request = value.request;
  if (typeof request !== "string" || !FORWARDED_OPS.has(request)) {
    throw new ControlRequestError(
      `cannot forward ${JSON.stringify(request ?? null).slice(0, 40)} (only ${
        [...FORWARDED_OPS].join(", ")
      })`,
    );
  }
  const body = value.body ?? {};
  if (!isObject(body)) throw new ControlRequestError("rpc body is not a JSON object");
  return { op, request, body };
}

/**
 * Splits bytes into lines of at most `maxBytes` each; `push` returns the complete lines so far and throws
 * {@linkcode RangeError} once a line grows past the limit (the rest of the stream is then useless).
 */
export class LineSplitter {
  #decoder = new TextDecoder();
  #partial = "";
  #maxBytes: number;

  /** A splitter for lines up to `maxBytes` (counted as UTF-16 units of the decoded text, at most the bytes). */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Adds bytes; returns the lines they complete (without their newline). */
  push(bytes: Uint8Array): string[] {
    const text = this.#partial + this.#decoder.decode(bytes, { stream: true });
    const lines = text.split("\n");
    this.#partial = lines.pop()!;
    if (this.#partial.length > this.#maxBytes || lines.some((l) => l.length > this.#maxBytes)) {
      throw new RangeError(`line too long (more than ${this.#maxBytes} bytes)`);
    }
    return lines;
  }
}
