// A logged-in connection for the commands run without a synced folder: the kept token, else the password.
import type { Frame } from "../protocol/frame.ts";
import { DEVICE_REVOKED } from "../protocol/messages.ts";
import { RpcError, type RpcPeer } from "../protocol/rpc.ts";
import { UserError } from "../protocol/user_error.ts";
import { openConnection } from "./connection.ts";
import { loginWithPassword } from "./login.ts";
import { readStoredLogin, type StoredLogin, storeLogin } from "./token_store.ts";

/** Options of {@linkcode openRemote}. */
export interface RemoteOptions {
  hostname: string;
  port: number;
  user: string;
  /** Device name of a new login (`--device`); absent: the kept login's, else `defaultDevice`. */
  device?: string;
  /** Device name of a first login without `--device`. */
  defaultDevice: string;
  /** The config folder that keeps logins (see `configDir`). */
  config: string;
  /** PEM of the CA given with `--ca` (kept with the login); without it the kept one, else the system's CAs. */
  caPem?: string;
  /** Gives the password for a first login or a token the server no longer takes. */
  password: () => Promise<string>;
  /** Asks a person at a terminal (after this device was revoked); null when nobody can be asked. */
  askPassword: (() => Promise<string>) | null;
  /** Says what happens (a login, a refused token): to stderr, so the output stays the command's. */
  log: (line: string) => void;
}

/** A connection that is logged in, with the pushes the server sent on it so far (taken by the caller). */
export interface RemoteSession {
  peer: RpcPeer;
  /** Pushes received since the last call, in order. */
  takePushes(): Record<string, unknown>[];
}

/** Why a revoked login is not renewed when nobody is at a terminal. */
export const REVOKED_NO_TERMINAL =
  "This device was revoked on the server, and there is no terminal here to ask " +
  "for the password: run the command again to log in with the password";

/**
 * Connects to the server and authenticates with the kept device token; without one (or when the server refuses
 * it: expired, or the password changed) logs in with the password and keeps the new token. A revoked device
 * logs in again only with a password typed at a terminal, as `filesync client` does; without a terminal its
 * token is dropped and the next command logs in as a first one. Throws {@linkcode UserError} for every failure.
 */
export async function openRemote(options: RemoteOptions): Promise<RemoteSession> {
  const key = { hostname: options.hostname, port: options.port, user: options.user };
  const stored = await readStoredLogin(options.config, key);
  const caPem = options.caPem ?? stored?.ca;
  const device = options.device ?? stored?.device ?? options.defaultDevice;
  let pushes: Record<string, unknown>[] = [];
  const connect = async () => {
    try {
      return await openConnection({
        hostname: options.hostname,
        port: options.port,
        caPem,
        rpc: { onPush: (frame: Frame) => pushes.push(frame.message) },
      });
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError((error as Error).message);
    }
  };
  const session = (peer: RpcPeer): RemoteSession => ({
    peer,
    takePushes: () => {
      const taken = pushes;
      pushes = [];
      return taken;
    },
  });
  const keep = async (login: StoredLogin) => {
    if (caPem !== undefined) login.ca = caPem;
    return await storeLogin(options.config, login);
  };
  // No token yet: the password is asked before connecting (the server gives a connection 10 s to log in).
  let password = stored?.token ? null : await options.password();
  let peer = await connect();
  try {
    if (stored?.token) {
      try {
        await peer.request("AUTH", { token: stored.token });
        if (options.caPem !== undefined && options.caPem !== stored.ca) await keep({ ...stored });
        return session(peer);
      } catch (error) {
        if (!(error instanceof RpcError) || error.code !== "auth_token") throw error;
        await keep({ ...stored, token: "" });
        if (error.detail.reason === DEVICE_REVOKED) {
          options.log(
            "this device was revoked on the server: log in again with the password to use it as a new device",
          );
          if (!options.askPassword) throw new UserError(REVOKED_NO_TERMINAL);
          password = await options.askPassword();
        } else {
          options.log(`${error.message}: logging in again with the password`);
          password = await options.password();
        }
        // A person may have taken longer than the server waits for a login: a fresh connection then.
        if (peer.isClosed) {
          peer = await connect();
        }
      }
    }
    const credentials = { user: options.user, device, password: password! };
    const reply = await loginWithPassword(peer, credentials).catch(async (error) => {
      // The connection dropped before the answer (the server gives 10 s to log in): once more on a new one.
      if (!(error instanceof RpcError) || error.code !== "closed") throw error;
      peer.close();
      peer = await connect();
      return await loginWithPassword(peer, credentials);
    });
    const file = await keep({
      ...key,
      device,
      deviceId: String(reply.message.deviceId),
      token: String(reply.message.token),
    });
    options.log(`logged in as ${options.user} on device "${device}" (token kept in ${file})`);
    return session(peer);
  } catch (error) {
    peer.close();
    if (error instanceof UserError) throw error;
    if (error instanceof RpcError && (error.code === "auth" || error.code === "rate_limited")) {
      throw new UserError(`Login failed: ${error.message}`);
    }
    throw new UserError(`Cannot log in to ${options.hostname}:${options.port}: ${(error as Error).message}`);
  }
}
