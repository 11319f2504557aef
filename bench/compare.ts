// The benchmark's pure judgements: filesync's speed against Syncthing's, and each scenario against issue #9's targets.

/** Bytes in one GiB. */
const GIB = 1024 * 1024 * 1024;

/** Frame bytes allowed per hop for a 4 KiB edit or a 10-byte insert: 3 chunks of the 256 KiB maximum + 64 KiB. */
export const EDIT_HOP_LIMIT = 3 * 256 * 1024 + 64 * 1024;

/** What a scenario measured, as far as its target needs it (absent = not measured). */
export interface Figures {
  /** filesync's measured interval (for `latency` the median edit), in seconds. */
  seconds: number | null;
  /** Syncthing's time for the same workload in the same run, in seconds. */
  syncthingSeconds?: number | null;
  /** Bytes of content synced (for CPU per GiB). */
  bytes?: number;
  /** CPU seconds summed over server, A and B during the interval. */
  cpuSeconds?: number;
  /** The larger of A→server and server→B (frame bytes, or content bytes where the target says so). */
  hopBytes?: number;
  /** The largest peak RSS of the processes the target names. */
  peakRssBytes?: number;
}

/** A target of issue #9 for one scenario. */
export interface Target {
  /** As the report shows it. */
  text: string;
  /** The reasons the figures miss it (empty = met), and what could not be judged. */
  check(figures: Figures): { misses: string[]; unknown: string[] };
}

/**
 * filesync's speed over Syncthing's for the same work (> 1: filesync is faster), i.e. Syncthing's time over
 * filesync's; null when either is missing or not positive.
 */
export function speedRatio(
  filesyncSeconds: number | null,
  syncthingSeconds: number | null | undefined,
): number | null {
  if (filesyncSeconds === null || syncthingSeconds === null || syncthingSeconds === undefined) return null;
  if (!(filesyncSeconds > 0) || !(syncthingSeconds > 0)) return null;
  return syncthingSeconds / filesyncSeconds;
}

/** A ratio for the report: "2.31×", or "—" when there is none. */
export function formatRatio(ratio: number | null): string {
  return ratio === null ? "—" : `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

/** CPU seconds per GiB of content, or null when not measured. */
export function cpuPerGiB(figures: Figures): number | null {
  if (figures.cpuSeconds === undefined || !figures.bytes || !Number.isFinite(figures.cpuSeconds)) return null;
  return figures.cpuSeconds / (figures.bytes / GIB);
}

type Check = (figures: Figures, out: { misses: string[]; unknown: string[] }) => void;

function atLeastTimesSyncthing(times: number): Check {
  return (f, out) => {
    const ratio = speedRatio(f.seconds, f.syncthingSeconds);
    if (ratio === null) out.unknown.push("no Syncthing figure");
    else if (ratio < times) out.misses.push(`${formatRatio(ratio)} Syncthing's speed (target ≥ ${times}×)`);
  };
}

function cpuBudget(limit: number): Check {
  return (f, out) => {
    const perGiB = cpuPerGiB(f);
    if (perGiB === null) out.unknown.push("no CPU figure");
    else if (perGiB > limit) out.misses.push(`${perGiB.toFixed(1)} CPU-s/GiB (target ≤ ${limit})`);
  };
}

function under(limitSeconds: number): Check {
  return (f, out) => {
    if (f.seconds === null) out.unknown.push("no time");
    else if (f.seconds >= limitSeconds) {
      out.misses.push(`${(f.seconds * 1000).toFixed(0)} ms (target < ${limitSeconds * 1000} ms)`);
    }
  };
}

function hopAtMost(limit: number): Check {
  return (f, out) => {
    if (f.hopBytes === undefined || !Number.isFinite(f.hopBytes)) out.unknown.push("no byte count");
    else if (f.hopBytes > limit) out.misses.push(`${f.hopBytes} bytes on a hop (target ≤ ${limit})`);
  };
}

function rssUnder(limit: number): Check {
  return (f, out) => {
    if (f.peakRssBytes === undefined || !Number.isFinite(f.peakRssBytes)) out.unknown.push("no RSS figure");
    else if (f.peakRssBytes >= limit) {
      out.misses.push(`peak RSS ${(f.peakRssBytes / 1e6).toFixed(0)} MB (target < ${limit / 1e6} MB)`);
    }
  };
}

function target(text: string, ...checks: Check[]): Target {
  return {
    text,
    check(figures) {
      const out = { misses: [] as string[], unknown: [] as string[] };
      for (const check of checks) check(figures, out);
      return out;
    },
  };
}

/** Issue #9's target per scenario name (scenarios without one are not listed). */
export const TARGETS: Record<string, Target> = {
  latency: target("median < 100 ms", under(0.1)),
  large: target("≥ 1× Syncthing, ≤ 8 CPU-s/GiB (srv+A+B)", atLeastTimesSyncthing(1), cpuBudget(8)),
  mixed: target("≥ 1× Syncthing, ≤ 8 CPU-s/GiB (srv+A+B)", atLeastTimesSyncthing(1), cpuBudget(8)),
  small: target("≥ 2× Syncthing's files/s", atLeastTimesSyncthing(2)),
  edit: target("< 500 ms, ≤ 832 KiB per hop", under(0.5), hopAtMost(EDIT_HOP_LIMIT)),
  insert: target("< 500 ms, ≤ 832 KiB per hop", under(0.5), hopAtMost(EDIT_HOP_LIMIT)),
  rename: target("< 300 ms, < 64 KiB content per hop", under(0.3), hopAtMost(64 * 1024 - 1)),
  saveall: target("< 200 ms", under(0.2)),
  "saveall-touch": target("< 200 ms", under(0.2)),
  memory: target("peak RSS < 150 MB each", rssUnder(150e6)),
  rescan: target("< 600 ms per no-change rescan, A < 250 MB", under(0.6), rssUnder(250e6)),
};

/**
 * The verdict of a scenario's figures against its target: "miss" when any part misses, "—" when a part could
 * not be judged (e.g. Syncthing was not found) and none missed, else "pass"; with the reasons.
 */
export function judge(
  target: Target,
  figures: Figures,
): { verdict: "pass" | "miss" | "—"; reasons: string[] } {
  const { misses, unknown } = target.check(figures);
  if (misses.length > 0) return { verdict: "miss", reasons: [...misses, ...unknown] };
  if (unknown.length > 0) return { verdict: "—", reasons: unknown };
  return { verdict: "pass", reasons: [] };
}
