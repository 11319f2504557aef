// What soak and crash tests ask a server: fsck of its stopped data folder, its versions and trash.
import { openConnection } from "../../client/connection.ts";
import type { RpcPeer } from "../../protocol/rpc.ts";
import { run } from "../harness.ts";

/** Result of `filesync server fsck --data DIR --json`. */
export interface FsckResult {
  code: number;
  output: string;
  /** The parsed JSON report, when the output holds one. */
  report?: unknown;
}

/** Runs `filesync server fsck --data DIR --json` (the server must be stopped). */
export async function runFsck(dataDir: string): Promise<FsckResult> {
  const { code, output } = await run(["server", "fsck", "--data", dataDir, "--json"], { timeoutMs: 120_000 });
  let report: unknown;
  const start = output.indexOf("{");
  if (start >= 0) {
    try {
      report = JSON.parse(output.slice(start, output.lastIndexOf("}") + 1));
    } catch { /* not JSON: the text is reported as is */ }
  }
  return { code, output, report };
}

/** A protocol connection logged in as a user, for reading its history. */
export class HistoryReader implements AsyncDisposable {
  #peer: RpcPeer;
  private constructor(peer: RpcPeer) {
    this.#peer = peer;
  }

  /** Connects to `127.0.0.1:port`, trusting `caPem`, and logs in as a device of its own. */
  static async open(
    options: { port: number; caPem: string; user: string; password: string; device?: string },
  ): Promise<HistoryReader> {
    const peer = await openConnection({ hostname: "127.0.0.1", port: options.port, caPem: options.caPem });
    try {
      await peer.request("LOGIN", {
        user: options.user,
        password: options.password,
        device: options.device ?? "history-check",
      });
    } catch (error) {
      peer.close();
      throw error;
    }
    return new HistoryReader(peer);
  }

  /** File hashes of every kept version of `path` (current one included); [] for an unknown path. */
  async versionHashes(path: string): Promise<string[]> {
    try {
      const reply = await this.#peer.request("VERSIONS", { path });
      return firstArray(reply.message, "versions").map((v) => String((v as { hash?: unknown }).hash ?? ""));
    } catch (error) {
      if (isUnsupported(error)) throw error;
      return [];
    }
  }

  /** Paths of the trash items. */
  async trashPaths(): Promise<string[]> {
    const reply = await this.#peer.request("TRASH", {});
    return firstArray(reply.message, "items").map((t) => String((t as { path?: unknown }).path ?? ""));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#peer.close();
    await this.#peer.closed;
  }
}

/** True for the error a server gives for an op it does not know (a server without history). */
export function isUnsupported(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === "unknown_op" || e?.code === "bad_request" && /unknown op/i.test(e.message ?? "") ||
    /unknown op/i.test(e?.message ?? "");
}

function firstArray(message: Record<string, unknown>, preferred: string): unknown[] {
  if (Array.isArray(message[preferred])) return message[preferred] as unknown[];
  for (const value of Object.values(message)) if (Array.isArray(value)) return value;
  return [];
}
