// The Syncthing half of a comparison: one workload on a fresh Syncthing pair, timed the way filesync's is.
import { until } from "./bench_world.ts";
import { SyncthingPair } from "./syncthing.ts";

/** Where and with which binary the Syncthing runs happen. */
export interface SyncthingContext {
  baseDir: string;
  binary: string;
}

/** One workload for Syncthing. */
export interface SyncthingWorkload {
  /** Short name, used in folder names. */
  name: string;
  /** Puts the starting state in A's folder (before the pair's first scan); omitted for an empty folder. */
  setup?(pair: SyncthingPair): Promise<void>;
  /** The change itself, made in A's folder before the clock starts. */
  change(pair: SyncthingPair): Promise<void>;
  /** True once B has the result (polled; file system only, cheap). */
  done(pair: SyncthingPair): boolean | Promise<boolean>;
  /** What `done` waits for, for a timeout message. */
  what: () => string;
  /** Checks B's content after convergence (throws WRONG CONTENT). */
  verify(pair: SyncthingPair): Promise<void>;
  timeoutMs: number;
  intervalMs: number;
}

/** What Syncthing took: seconds from the scan request to B having the result, CPU and peak RSS per instance. */
export interface SyncthingMeasure {
  seconds: number;
  /** CPU seconds of "A" and "B" over the measured interval (scan request until REST convergence). */
  cpu: Map<string, number>;
  /** Peak RSS (VmHWM) of "A" and "B" over their life. */
  rss: Map<string, number>;
  /** Seconds from B having the files until the REST API said the pair converged. */
  convergeSeconds: number;
  /** Bytes A sent and received over its connection to B in the interval (Syncthing's own counters). */
  aSent: number;
  aReceived: number;
}

/**
 * Runs one workload on a fresh pair: setup, scan and wait for convergence; then the change, and the clock
 * starts as the scan is requested (Syncthing has its watcher off, so the scan is how it sees a change); it
 * stops when `done` first holds. Then waits for REST convergence and verifies. The pair is stopped and its
 * folders removed also on failure.
 */
export async function runSyncthing(
  ctx: SyncthingContext,
  workload: SyncthingWorkload,
): Promise<SyncthingMeasure> {
  await using pair = await SyncthingPair.start(ctx.baseDir, workload.name, ctx.binary);
  if (workload.setup) {
    await workload.setup(pair);
    await pair.scan();
    await pair.converged(workload.timeoutMs);
  }
  await workload.change(pair);
  const trafficBefore = await pair.traffic("A");
  const before = pair.snapshot();
  const started = performance.now();
  const scanning = pair.scan();
  scanning.catch(() => {}); // awaited below; a failure is reported there
  const done = await until(() => workload.done(pair), {
    timeoutMs: workload.timeoutMs,
    intervalMs: workload.intervalMs,
    world: pair,
    what: workload.what,
  });
  await scanning;
  await pair.converged(workload.timeoutMs);
  const converged = performance.now();
  const after = pair.snapshot();
  const rss = pair.peakRss();
  const trafficAfter = await pair.traffic("A");
  await workload.verify(pair);
  const cpu = new Map<string, number>();
  for (const name of ["A", "B"]) cpu.set(name, (after.cpu.get(name) ?? NaN) - (before.cpu.get(name) ?? NaN));
  return {
    seconds: (done - started) / 1000,
    cpu,
    rss,
    convergeSeconds: (converged - done) / 1000,
    aSent: trafficAfter.out - trafficBefore.out,
    aReceived: trafficAfter.in - trafficBefore.in,
  };
}
