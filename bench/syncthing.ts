// Syncthing beside filesync in the benchmark: two instances on loopback with their own homes, driven by REST.
import { join } from "node:path";
import { Proc } from "../tests/harness.ts";
import { BenchTimeout, delay, tail } from "./bench_world.ts";
import { procStats } from "./proc_stats.ts";

/** The folder ID both Syncthing instances share. */
export const SYNCTHING_FOLDER = "bench";

/** One side of the pair as the config of the other (or itself) names it. */
export interface SyncthingDevice {
  id: string;
  name: string;
  /** `tcp://127.0.0.1:PORT`: where the device listens for the other. */
  address: string;
}

/** What one instance's config.xml says. */
export interface SyncthingConfigOptions {
  self: SyncthingDevice;
  peer: SyncthingDevice;
  /** `127.0.0.1:PORT` of the GUI/REST listener. */
  guiAddress: string;
  apiKey: string;
  /** The shared folder's path on this instance. */
  folderPath: string;
}

/** Escapes text for an XML attribute or element. */
export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

/**
 * The config.xml (version 36, Syncthing 1.19) of one benchmark instance: only loopback (no global or local
 * discovery, relays, NAT, usage or crash reporting, upgrades), the peer at its static address, one shared
 * folder with the watcher off and a daily rescan (scans are triggered by REST), normal CPU priority.
 */
export function syncthingConfigXml(options: SyncthingConfigOptions): string {
  const x = escapeXml;
  const device = (d: SyncthingDevice) =>
    `    <device id="${x(d.id)}" name="${x(d.name)}" compression="metadata" introducer="false">
        <address>${x(d.address)}</address>
        <paused>false</paused>
        <autoAcceptFolders>false</autoAcceptFolders>
    </device>`;
  return `<configuration version="36">
    <folder id="${SYNCTHING_FOLDER}" label="${SYNCTHING_FOLDER}" path="${
    x(options.folderPath)
  }" type="sendreceive" rescanIntervalS="86400" fsWatcherEnabled="false" fsWatcherDelayS="10" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="${x(options.self.id)}"></device>
        <device id="${x(options.peer.id)}"></device>
        <minDiskFree unit="%">0</minDiskFree>
        <paused>false</paused>
        <markerName>.stfolder</markerName>
    </folder>
${device(options.self)}
${device(options.peer)}
    <gui enabled="true" tls="false" debugging="false">
        <address>${x(options.guiAddress)}</address>
        <apikey>${x(options.apiKey)}</apikey>
        <theme>default</theme>
    </gui>
    <options>
        <listenAddress>${x(options.self.address)}</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <startBrowser>false</startBrowser>
        <urAccepted>-1</urAccepted>
        <urSeen>3</urSeen>
        <crashReportingEnabled>false</crashReportingEnabled>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <reconnectionIntervalS>1</reconnectionIntervalS>
        <restartOnWakeup>false</restartOnWakeup>
        <setLowPriority>false</setLowPriority>
        <minHomeDiskFree unit="%">0</minHomeDiskFree>
        <stunServer></stunServer>
        <announceLANAddresses>false</announceLANAddresses>
    </options>
</configuration>
`;
}

/** The path of the `syncthing` binary (FILESYNC_BENCH_SYNCTHING, else `syncthing` on PATH), or null if none runs. */
export async function findSyncthing(): Promise<{ path: string; version: string } | null> {
  const path = Deno.env.get("FILESYNC_BENCH_SYNCTHING") ?? "syncthing";
  try {
    const out = await new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "null" })
      .output();
    if (!out.success) return null;
    return { path, version: new TextDecoder().decode(out.stdout).trim() };
  } catch {
    return null;
  }
}

/** A TCP port that was free a moment ago (bound to port 0 and released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Part of `/rest/db/status`. */
export interface FolderStatus {
  state: string;
  needFiles: number;
  needBytes: number;
  needTotalItems: number;
  localFiles: number;
  globalFiles: number;
  inSyncFiles: number;
}

/** Part of `/rest/db/completion`. */
export interface Completion {
  completion: number;
  needBytes: number;
  needItems: number;
}

/** CPU seconds per process name ("A", "B") at one moment. */
export interface PairSnapshot {
  at: number;
  cpu: Map<string, number>;
}

interface Instance {
  name: string;
  home: string;
  dir: string;
  id: string;
  apiKey: string;
  gui: string;
  address: string;
  proc: Proc | null;
}

/** Pairs not yet disposed, so an interrupted run can still stop them. */
export const livePairs: Set<SyncthingPair> = new Set();

/**
 * Two Syncthing instances A and B under `baseDir/syncthing-bench-NAME-*` (homes and folders), sharing one folder.
 * Disposing stops both and removes everything.
 */
export class SyncthingPair implements AsyncDisposable {
  readonly root: string;
  readonly #binary: string;
  readonly #instances = new Map<string, Instance>();

  private constructor(root: string, binary: string) {
    this.root = root;
    this.#binary = binary;
    livePairs.add(this);
  }

  /** Generates keys and configs for A and B, starts both and waits until they are connected to each other. */
  static async start(baseDir: string, name: string, binary: string): Promise<SyncthingPair> {
    const root = await Deno.makeTempDir({ dir: baseDir, prefix: `syncthing-bench-${name}-` });
    const pair = new SyncthingPair(root, binary);
    try {
      for (const device of ["A", "B"]) pair.#instances.set(device, await pair.#generate(device));
      const [a, b] = [pair.#instances.get("A")!, pair.#instances.get("B")!];
      for (const [self, peer] of [[a, b], [b, a]]) {
        await Deno.mkdir(join(self.dir, ".stfolder"), { recursive: true });
        await Deno.writeTextFile(
          join(self.home, "config.xml"),
          syncthingConfigXml({
            self: { id: self.id, name: self.name, address: self.address },
            peer: { id: peer.id, name: peer.name, address: peer.address },
            guiAddress: self.gui,
            apiKey: self.apiKey,
            folderPath: self.dir,
          }),
        );
      }
      for (const instance of [a, b]) pair.#spawn(instance);
      await pair.#until(async () => {
        for (const instance of [a, b]) {
          const peer = instance === a ? b : a;
          const reply = await pair.#get(instance.name, "/rest/system/connections").catch(() => null) as
            | { connections?: Record<string, { connected?: boolean }> }
            | null;
          if (!reply?.connections?.[peer.id]?.connected) return false;
        }
        return true;
      }, { timeoutMs: 60_000, intervalMs: 50, what: "the two Syncthing instances to connect" });
      await pair.converged(60_000);
    } catch (error) {
      await pair[Symbol.asyncDispose]();
      throw error;
    }
    return pair;
  }

  async #generate(name: string): Promise<Instance> {
    const home = join(this.root, `home-${name}`);
    const out = await new Deno.Command(this.#binary, {
      args: ["generate", `--home=${home}`, "--no-default-folder", "--skip-port-probing"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const id = /Device ID:\s*([A-Z0-9-]{63})/.exec(text)?.[1];
    if (!out.success || !id) throw new Error(`syncthing generate failed for ${name}: ${tail(text, 10)}`);
    return {
      name,
      home,
      dir: join(this.root, name),
      id,
      apiKey: crypto.randomUUID().replaceAll("-", ""),
      gui: `127.0.0.1:${freePort()}`,
      address: `tcp://127.0.0.1:${freePort()}`,
      proc: null,
    };
  }

  #spawn(instance: Instance): void {
    // One process per instance (no monitor parent, see STMONITORED), so its /proc figures are the whole cost.
    instance.proc = new Proc(`syncthing-${instance.name}`, [
      "serve",
      `--home=${instance.home}`,
      "--no-browser",
      "--no-restart",
      "--no-upgrade",
      "--no-default-folder",
      "--skip-port-probing",
      `--gui-address=http://${instance.gui}`,
      `--gui-apikey=${instance.apiKey}`,
      "--logflags=0",
    ], {
      command: [this.#binary],
      // STMONITORED tells it that it is already the inner process (1.19 starts a monitor parent otherwise).
      env: {
        STMONITORED: "yes",
        STNODEFAULTFOLDER: "1",
        STNOUPGRADE: "1",
        STNORESTART: "1",
        HOME: instance.home,
      },
    });
  }

  #instance(device: string): Instance {
    const instance = this.#instances.get(device);
    if (!instance) throw new TypeError(`No Syncthing instance "${device}"`);
    return instance;
  }

  /** The synced folder of "A" or "B". */
  dir(device: string): string {
    return this.#instance(device).dir;
  }

  /** A path inside the pair's folder (outside both synced folders). */
  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  async #request(device: string, method: string, path: string): Promise<Response> {
    const instance = this.#instance(device);
    return await fetch(`http://${instance.gui}${path}`, {
      method,
      headers: { "X-API-Key": instance.apiKey },
      signal: AbortSignal.timeout(600_000),
    });
  }

  async #get(device: string, path: string): Promise<unknown> {
    const response = await this.#request(device, "GET", path);
    if (!response.ok) {
      throw new Error(`Syncthing ${device} GET ${path}: ${response.status} ${await response.text()}`);
    }
    return await response.json();
  }

  /** Scans A's folder now (POST /rest/db/scan, which returns when the scan is done). */
  async scan(device = "A"): Promise<void> {
    const response = await this.#request(device, "POST", `/rest/db/scan?folder=${SYNCTHING_FOLDER}`);
    const body = await response.text();
    if (!response.ok) throw new Error(`Syncthing ${device} scan failed: ${response.status} ${body}`);
  }

  /** `/rest/db/status` of the shared folder on one device. */
  async status(device: string): Promise<FolderStatus> {
    return await this.#get(device, `/rest/db/status?folder=${SYNCTHING_FOLDER}`) as FolderStatus;
  }

  /** How complete `of` is, as `at` sees it (`/rest/db/completion`). */
  async completion(at: string, of: string): Promise<Completion> {
    const id = this.#instance(of).id;
    return await this.#get(at, `/rest/db/completion?folder=${SYNCTHING_FOLDER}&device=${id}`) as Completion;
  }

  /**
   * Waits until the pair agrees it is in sync, from the REST API: A sees B 100% complete with nothing needed,
   * and both folders are idle with nothing to pull.
   */
  async converged(timeoutMs: number): Promise<void> {
    let last = "";
    await this.#until(async () => {
      const [done, a, b] = [await this.completion("A", "B"), await this.status("A"), await this.status("B")];
      last = `A sees B at ${done.completion}% (needBytes ${done.needBytes}, needItems ${done.needItems}); ` +
        `A ${a.state}, B ${b.state} needFiles ${b.needFiles} needTotalItems ${b.needTotalItems}`;
      return done.completion === 100 && done.needBytes === 0 && done.needItems === 0 && a.state === "idle" &&
        b.state === "idle" && b.needTotalItems === 0 && a.needTotalItems === 0;
    }, { timeoutMs, intervalMs: 50, what: () => `Syncthing to converge: ${last}` });
  }

  /** Polls `check` until true (throws a BenchTimeout after `timeoutMs`, an Error if an instance exited). */
  async #until(
    check: () => Promise<boolean>,
    options: { timeoutMs: number; intervalMs: number; what: string | (() => string) },
  ): Promise<number> {
    const deadline = performance.now() + options.timeoutMs;
    while (true) {
      if (await check()) return performance.now();
      this.assertAlive();
      if (performance.now() > deadline) {
        const what = typeof options.what === "string" ? options.what : options.what();
        throw new BenchTimeout(`timed out after ${(options.timeoutMs / 1000).toFixed(0)} s: ${what}`);
      }
      await delay(options.intervalMs);
    }
  }

  /** Bytes a device has sent and received over its connections, from `/rest/system/connections` totals. */
  async traffic(device: string): Promise<{ in: number; out: number }> {
    const reply = await this.#get(device, "/rest/system/connections") as {
      total?: { inBytesTotal?: number; outBytesTotal?: number };
    };
    return { in: reply.total?.inBytesTotal ?? NaN, out: reply.total?.outBytesTotal ?? NaN };
  }

  /** Throws if an instance has exited. */
  assertAlive(): void {
    for (const instance of this.#instances.values()) {
      if (instance.proc && instance.proc.exitCode !== null) {
        throw new Error(
          `Syncthing ${instance.name} exited with code ${instance.proc.exitCode}:\n${
            tail(instance.proc.output, 20)
          }`,
        );
      }
    }
  }

  /** CPU seconds of A and B now. */
  snapshot(): PairSnapshot {
    const cpu = new Map<string, number>();
    for (const [name, instance] of this.#instances) {
      cpu.set(name, instance.proc ? procStats(instance.proc.child.pid)?.cpuSeconds ?? NaN : NaN);
    }
    return { at: performance.now(), cpu };
  }

  /** Peak RSS (VmHWM) of A and B, in bytes. */
  peakRss(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, instance] of this.#instances) {
      out.set(name, instance.proc ? procStats(instance.proc.child.pid)?.peakRssBytes ?? NaN : NaN);
    }
    return out;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    livePairs.delete(this);
    await Promise.all(
      [...this.#instances.values()].map((instance) => instance.proc?.stop(10_000).catch(() => {})),
    );
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}
