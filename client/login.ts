// LOGIN with a password, waiting out the short postponements a server asks for (several devices at once).
import { RpcError, type RpcPeer } from "../protocol/rpc.ts";

/** How often a LOGIN the server postponed is asked again before giving up. */
export const LOGIN_RETRIES = 5;
/** Longest postponement of a LOGIN that is waited out (longer ones are reported as login failures). */
export const LOGIN_RETRY_MAX_MS = 10_000;

/**
 * Sends LOGIN; a `rate_limited` refusal with a short `retryMs` is asked again after that wait (told to
 * `onPostponed`), up to {@linkcode LOGIN_RETRIES} times. A wrong password is never retried.
 */
export async function loginWithPassword(
  peer: RpcPeer,
  login: { user: string; device: string; password: string },
  onPostponed: (waitMs: number) => void = () => {},
): Promise<{ message: Record<string, unknown> }> {
  for (let attempt = 0;; attempt++) {
    try {
      return await peer.request("LOGIN", login);
    } catch (error) {
      const waitMs = error instanceof RpcError && error.code === "rate_limited" ? error.detail.retryMs : null;
      if (typeof waitMs !== "number" || waitMs > LOGIN_RETRY_MAX_MS || attempt >= LOGIN_RETRIES) throw error;
      onPostponed(waitMs);
      await new Promise((resolve) => setTimeout(resolve, waitMs + Math.random() * 250));
    }
  }
}
