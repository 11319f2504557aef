// Several servers of one cluster: the `--server` list, and which one the client tries next and when (pure).
import { UsageError } from "../protocol/user_error.ts";
import { parseServerAddress } from "./connection.ts";

/** Host and port of one server (a node of the cluster). */
export interface ServerAddress {
  hostname: string;
  port: number;
}

/**
 * The servers of `--server` (given once or more), in the order given. None, or one given twice, is a
 * {@linkcode UsageError}; so is one that is not `HOST:PORT` (see {@linkcode parseServerAddress}).
 *
 * @example
 * ```ts
 * parseServerList(["a:8443", "[::1]:8443"]); // [{ hostname: "a", port: 8443 }, { hostname: "::1", port: 8443 }]
 * ```
 */
export function parseServerList(texts: readonly string[]): ServerAddress[] {
  if (texts.length === 0) throw new UsageError("Missing --server (see filesync client --help)");
  const servers: ServerAddress[] = [];
  for (const text of texts) {
    const server = parseServerAddress(text);
    if (servers.some((s) => sameServer(s, server))) {
      throw new UsageError(`--server "${text}" is given twice: list each server once`);
    }
    servers.push(server);
  }
  return servers;
}

/** True when both name the same host and port (host names compared without case). */
export function sameServer(a: ServerAddress, b: ServerAddress): boolean {
  return a.port === b.port && a.hostname.toLowerCase() === b.hostname.toLowerCase();
}

/** True when both lists name the same servers, whatever their order (host names compared without case). */
export function sameServerNames(a: readonly string[], b: readonly string[]): boolean {
  const set = (names: readonly string[]) => [...new Set(names.map((n) => n.toLowerCase()))].sort().join(" ");
  return set(a) === set(b);
}

/** A server as events, logs and the folder's device.json name it: `HOST:PORT` (an IPv6 host without brackets). */
export function serverName(server: ServerAddress): string {
  return `${server.hostname}:${server.port}`;
}

/** Options of {@linkcode ServerRotation}. */
export interface ServerRotationOptions {
  /** First and largest wait between rounds, in ms. @default [250, 30000] */
  backoffMs?: [number, number];
  /** A number in [0, 1) for the jitter. @default Math.random */
  random?: () => number;
}

/** The next connection attempt: to which server, after how long. */
export interface Attempt {
  server: ServerAddress;
  /** Index of the server in the list. */
  index: number;
  /** How long to wait before it (0: at once, the next server of a round). */
  waitMs: number;
}

/**
 * Which server the client tries next, and how long it waits first. A round tries each server once, in list
 * order (wrapping around), one right after the other; the first round starts at the first server. A round where
 * none could be reached is followed by a wait (jittered ±25%) that doubles each round up to the largest. A connection that was up and dropped
 * starts the next round, after the first wait, at the server after the one it was with (so a node that died is
 * tried last); the client stays with the server it reaches until that connection drops.
 *
 * @example
 * ```ts
 * const rotation = new ServerRotation([a, b], { random: () => 0.5 });
 * rotation.next(); // { server: a, index: 0, waitMs: 0 }
 * rotation.failed(); // a cannot be reached
 * rotation.next(); // { server: b, index: 1, waitMs: 0 }
 * rotation.connected();
 * rotation.dropped();
 * rotation.next(); // { server: a, index: 0, waitMs: 250 }
 * ```
 */
export class ServerRotation {
  readonly servers: readonly ServerAddress[];
  #first: number;
  #max: number;
  #random: () => number;
  #index = 0;
  /** Servers tried in this round so far. */
  #tried = 0;
  /** The wait before the next round. */
  #delay: number;
  /** The wait before the next attempt (0 within a round). */
  #wait = 0;

  /** A rotation over `servers` (at least one), starting at the first. */
  constructor(servers: readonly ServerAddress[], options: ServerRotationOptions = {}) {
    if (servers.length === 0) throw new RangeError("ServerRotation needs at least one server");
    this.servers = servers;
    [this.#first, this.#max] = options.backoffMs ?? [250, 30_000];
    this.#delay = this.#first;
    this.#random = options.random ?? Math.random;
  }

  /** The attempt to make now. */
  next(): Attempt {
    return { server: this.servers[this.#index], index: this.#index, waitMs: this.#wait };
  }

  /** The attempt {@linkcode next} gave failed: the next server of the round, or a wait and a new round. */
  failed(): void {
    this.#tried++;
    this.#index = (this.#index + 1) % this.servers.length;
    if (this.#tried < this.servers.length) {
      this.#wait = 0;
      return;
    }
    this.#tried = 0;
    this.#backOff();
  }

  /** The attempt {@linkcode next} gave is connected: the waits start again from the first. */
  connected(): void {
    this.#tried = 0;
    this.#wait = 0;
    this.#delay = this.#first;
  }

  /** The connection made dropped: after a wait, a round from the server after it. */
  dropped(): void {
    this.#tried = 0;
    this.#index = (this.#index + 1) % this.servers.length;
    this.#backOff();
  }

  #backOff(): void {
    this.#wait = Math.round(this.#delay * (0.75 + this.#random() * 0.5));
    this.#delay = Math.min(this.#max, this.#delay * 2);
  }
}
