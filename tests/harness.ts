// End-to-end harness: real server and client processes on loopback, temp folders, polling with deadlines.
import { createHash } from "node:crypto";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");

/** The command that runs filesync: `deno run … main.ts`, or FILESYNC_CMD (e.g. a bundled build). */
export function filesyncCommand(): string[] {
  const custom = Deno.env.get("FILESYNC_CMD");
  if (custom) return custom.split(" ").filter(Boolean);
  return [Deno.execPath(), "run", "--allow-all", "--unstable-kv", "--config", join(ROOT, "deno.json"), MAIN];
}

/** A temp folder removed on dispose. */
export class TempDir implements AsyncDisposable {
  readonly path: string;
  constructor() {
    // FILESYNC_TEST_TMPDIR puts the folders elsewhere (e.g. /dev/shm, to take the disk out of a measurement).
    this.path = Deno.makeTempDirSync({ prefix: "filesync-test-", dir: Deno.env.get("FILESYNC_TEST_TMPDIR") });
  }
  /** A path inside the folder. */
  join(...parts: string[]): string {
    return join(this.path, ...parts);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

/** A running filesync process whose output is collected. */
export class Proc implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly name: string;
  #out = "";
  #readers: Promise<void>[];
  #status: Promise<Deno.CommandStatus>;
  exitCode: number | null = null;

  constructor(
    name: string,
    args: string[],
    options: { env?: Record<string, string>; stdin?: string; cwd?: string; command?: string[] } = {},
  ) {
    // `command` replaces the filesync command (e.g. to run it as another user).
    const [cmd, ...rest] = [...(options.command ?? filesyncCommand()), ...args];
    this.name = name;
    const env = { ...options.env };
    this.child = new Deno.Command(cmd, {
      args: rest,
      // As `deno task filesync` runs it: one malloc arena keeps the resident memory of long transfers down.
      env: { NO_COLOR: "1", MALLOC_ARENA_MAX: "1", ...env },
      cwd: options.cwd,
      stdin: options.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = this.child.stdin.getWriter();
      writer.write(new TextEncoder().encode(options.stdin)).then(() => writer.close()).catch(() => {});
    }
    this.#readers = [this.#collect(this.child.stdout), this.#collect(this.child.stderr)];
    this.#status = this.child.status.then((s) => {
      this.exitCode = s.code;
      return s;
    });
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const part of stream) {
      this.#out += decoder.decode(part, { stream: true });
      if (Deno.env.get("FILESYNC_TEST_VERBOSE")) {
        for (const line of decoder.decode(part).split("\n")) {
          if (line) console.error(`[${this.name}] ${line}`);
        }
      }
    }
  }

  /** Everything printed so far (stdout and stderr). */
  get output(): string {
    return this.#out;
  }

  /** Waits until the output matches; returns the match. */
  async waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    await waitFor(() => (match = this.#out.match(pattern)) !== null || this.exitCode !== null, {
      timeoutMs,
      message: () => `${this.name}: no output matching ${pattern}; output so far:\n${this.#out}`,
    });
    if (!match) {
      throw new Error(`${this.name} exited (${this.exitCode}) before printing ${pattern}:\n${this.#out}`);
    }
    return match;
  }

  /** Waits for the process to exit by itself; returns its exit code. */
  async exited(timeoutMs = 20_000): Promise<number> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      const status = await this.#status;
      await Promise.all(this.#readers);
      return status.code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal (ignored if the process is gone). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch { /* already exited */ }
  }

  /** Stops the process (SIGTERM, then SIGKILL after a grace period) and waits for it. */
  async stop(graceMs = 8000): Promise<number> {
    if (this.exitCode === null) this.kill("SIGTERM");
    return await this.exited(graceMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** A running server process. */
export class ServerProc extends Proc {
  port = 0;
  readonly dataDir: string;
  constructor(dataDir: string, extraArgs: string[] = [], port = 0, env: Record<string, string> = {}) {
    super("server", [
      "server",
      "--data",
      dataDir,
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      ...extraArgs,
    ], { env });
    this.dataDir = dataDir;
  }
  /** The CA file clients trust. */
  get caPath(): string {
    return join(this.dataDir, "certs", "ca.pem");
  }
  /** `127.0.0.1:PORT`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }
}

/** Starts a server (on a free port unless `port` is given) and waits until it listens. */
export async function startServer(
  dataDir: string,
  extraArgs: string[] = [],
  port = 0,
  env: Record<string, string> = {},
): Promise<ServerProc> {
  const server = new ServerProc(dataDir, extraArgs, port, env);
  try {
    const match = await server.waitForOutput(/listening on [^\s]+:(\d+)/);
    server.port = Number(match[1]);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** Runs `filesync ARGS` to completion; returns exit code and output. */
export async function run(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number; output: string }> {
  const proc = new Proc(args[0], args, options);
  const code = await proc.exited(options.timeoutMs ?? 30_000);
  return { code, output: proc.output };
}

/** Adds a user (through the running server's admin socket, or directly when none runs). */
export async function addUser(dataDir: string, name: string, password: string): Promise<void> {
  const { code, output } = await run(["user", "add", name, "--data", dataDir], {
    env: { FILESYNC_PASSWORD: password },
  });
  if (code !== 0) throw new Error(`user add failed (${code}): ${output}`);
}

/** Options of {@linkcode startClient}. */
export interface ClientOptions {
  server: ServerProc | string;
  ca?: string | null;
  user: string;
  dir: string;
  device: string;
  password?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Runs the client with this command instead of {@linkcode filesyncCommand}. */
  command?: string[];
}

/** Starts a client process (does not wait for it to connect). */
export function startClient(options: ClientOptions): Proc {
  const address = typeof options.server === "string" ? options.server : options.server.address;
  const ca = options.ca === undefined && typeof options.server !== "string"
    ? options.server.caPath
    : options.ca;
  const args = [
    "client",
    "--server",
    address,
    "--user",
    options.user,
    "--dir",
    options.dir,
    "--device",
    options.device,
  ];
  if (ca) args.push("--ca", ca);
  args.push("--rescan", "2", ...(options.extraArgs ?? []));
  const env: Record<string, string> = { ...options.env };
  if (options.password !== undefined) env.FILESYNC_PASSWORD = options.password;
  return new Proc(`client ${options.device}`, args, { env, command: options.command });
}

/** Starts a client and waits until it has connected. */
export async function startConnectedClient(options: ClientOptions): Promise<Proc> {
  const client = startClient(options);
  try {
    await client.waitForOutput(/connected to /);
  } catch (error) {
    await client.stop();
    throw error;
  }
  return client;
}

/** Polls until `check` is true; throws with `message` after the deadline. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; message?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  while (true) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`Timed out: ${options.message?.() ?? "condition not met"}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/**
 * A folder's content: path -> "dir" or the SHA-256 of the file, without `.filesync`. Strict: for a settled folder,
 * a path that vanishes during the walk throws. Polls of a folder that a client may still be changing use
 * {@linkcode readTreeWhileChanging}.
 */
export async function readTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for await (const entry of Deno.readDir(rel ? join(dir, rel) : dir)) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (path === ".filesync") continue;
      if (entry.isDirectory) {
        out.set(path, "dir");
        await walk(path);
      } else if (entry.isFile) {
        out.set(path, createHash("sha256").update(await Deno.readFile(join(dir, path))).digest("hex"));
      }
    }
  };
  await walk("");
  return out;
}

/**
 * {@linkcode readTree} for polls: `null` when the folder changed under the walk (a path listed, then gone or
 * replaced by another kind before it was read), or does not exist yet. A poll takes that as "not there yet".
 */
export async function readTreeWhileChanging(dir: string): Promise<Map<string, string> | null> {
  try {
    return await readTree(dir);
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.IsADirectory
    ) return null;
    throw error;
  }
}

/** Sorted text listing of a tree, for readable assertion messages. */
export function describeTree(tree: Map<string, string>): string {
  return [...tree].sort(([a], [b]) => a < b ? -1 : 1).map(([p, h]) =>
    `${p} ${h === "dir" ? "/" : h.slice(0, 8)}`
  )
    .join("\n");
}

/** True when both folders hold the same paths with the same content (false while either changes under the read). */
export async function treesEqual(a: string, b: string): Promise<boolean> {
  const [ta, tb] = [await readTreeWhileChanging(a), await readTreeWhileChanging(b)];
  return ta !== null && tb !== null && describeTree(ta) === describeTree(tb);
}

/** Waits until both folders hold the same tree (a folder changing under the read is "not yet"). */
export async function waitForSameTree(a: string, b: string, timeoutMs = 15_000): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const [ra, rb] = [await readTreeWhileChanging(a), await readTreeWhileChanging(b)];
    const [ta, tb] = [ra && describeTree(ra), rb && describeTree(rb)];
    last = `A:\n${ta ?? "(changed while read)"}\nB:\n${tb ?? "(changed while read)"}`;
    return ta !== null && ta === tb;
  }, { timeoutMs, message: () => `trees differ\n${last}` });
}

/** Waits until a file holds exactly `content`. */
export async function waitForFile(
  path: string,
  content: string | Uint8Array,
  timeoutMs = 15_000,
): Promise<void> {
  const want = typeof content === "string" ? new TextEncoder().encode(content) : content;
  let seen = "";
  await waitFor(async () => {
    try {
      const got = await Deno.readFile(path);
      seen = `${got.length} bytes`;
      return got.length === want.length && got.every((b, i) => b === want[i]);
    } catch {
      seen = "missing";
      return false;
    }
  }, { timeoutMs, message: () => `${path} never held the expected ${want.length} bytes (last: ${seen})` });
}

/** Waits until nothing exists at `path`. */
export async function waitForGone(path: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    try {
      await Deno.lstat(path);
      return false;
    } catch {
      return true;
    }
  }, { timeoutMs, message: () => `${path} still exists` });
}

/** Deterministic pseudo-random bytes. */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A server with one user and a temp folder for clients; disposed together. */
export class World implements AsyncDisposable {
  readonly tmp = new TempDir();
  server!: ServerProc;
  readonly procs: Proc[] = [];
  readonly user = "alice";
  readonly password = "correct horse battery";

  /** Starts the server and adds the user. */
  static async create(): Promise<World> {
    const world = new World();
    try {
      world.server = await startServer(world.tmp.join("server"));
      await addUser(world.server.dataDir, world.user, world.password);
    } catch (error) {
      await world[Symbol.asyncDispose]();
      throw error;
    }
    return world;
  }

  /** Starts a connected client for the user in `tmp/NAME`. */
  async client(device: string, options: Partial<ClientOptions> = {}): Promise<Proc> {
    const client = await startConnectedClient({
      server: this.server,
      user: this.user,
      password: this.password,
      dir: this.tmp.join(device),
      device,
      ...options,
    });
    this.procs.push(client);
    return client;
  }

  /** Starts a client for the user in `tmp/NAME` without waiting for it to connect (stopped on dispose). */
  startClient(device: string): Proc {
    const client = startClient({
      server: this.server,
      user: this.user,
      password: this.password,
      dir: this.dir(device),
      device,
    });
    this.procs.push(client);
    return client;
  }

  /** Stops the server and starts it again on the same port and data folder. */
  async restartServer(): Promise<void> {
    const { dataDir, port } = this.server;
    await this.server.stop();
    this.server = await startServer(dataDir, [], port);
  }

  /** The folder of a device. */
  dir(device: string): string {
    return this.tmp.join(device);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    if (this.server) await this.server.stop();
    await this.tmp[Symbol.asyncDispose]();
  }
}

/** Total size of a server's stored chunks (0 before any). */
export async function chunkBytes(dataDir: string): Promise<number> {
  let total = 0;
  try {
    for await (const dir of Deno.readDir(join(dataDir, "chunks"))) {
      if (!dir.isDirectory) continue;
      for await (const file of Deno.readDir(join(dataDir, "chunks", dir.name))) {
        if (/^[0-9a-f]{64}$/.test(file.name)) {
          total += (await Deno.stat(join(dataDir, "chunks", dir.name, file.name))).size;
        }
      }
    }
  } catch { /* not there yet */ }
  return total;
}

/** Size of the downloads in progress in a client's temp folder (0 if none). */
export async function partialBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for await (const file of Deno.readDir(join(dir, ".filesync", "tmp"))) {
      total += (await Deno.stat(join(dir, ".filesync", "tmp", file.name))).size;
    }
  } catch { /* not there yet */ }
  return total;
}

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/**
 * The bytes a client reports for its next `uploaded PATH (SIZE[, X sent])` or `downloaded PATH (SIZE[, X
 * received])` line after output offset `from`: X when given, else the whole size. Waits for the line.
 */
export async function transferredBytes(
  proc: Proc,
  verb: "uploaded" | "downloaded",
  path: string,
  from = 0,
  timeoutMs = 30_000,
): Promise<number> {
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(
    `${verb} ${escaped} \\(([\\d.]+ \\w+)(?:, ([\\d.]+ \\w+) (?:sent|received))?\\)`,
  );
  await waitFor(() => pattern.test(proc.output.slice(from)), {
    timeoutMs,
    message: () => `no "${verb} ${path}" line in:\n${proc.output.slice(from)}`,
  });
  const [value, unit] = (proc.output.slice(from).match(pattern)!.slice(1).reverse().find(Boolean))!.split(
    " ",
  );
  return Number(value) * SIZE_UNITS[unit];
}
