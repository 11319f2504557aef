// Soak operation generator: a pure choice of the next operation from fixed draws and the device's view.
import { indexOf, weighted } from "./rng.ts";

/** Draws {@linkcode planOp} reads: a caller consumes exactly this many per operation, whatever is chosen. */
export const DRAWS_PER_OP = 12;

/** Files above this size are "large" (several chunks: the chunker's largest chunk is 256 KiB). */
export const LARGE_BYTES = 256 * 1024;

/** What one device's folder holds, as the generator sees it (paths relative, `/`-separated). */
export interface DeviceView {
  files: { path: string; size: number }[];
  dirs: string[];
}

/** How the content of a write is made: `size` bytes seeded by `seed` (see the runner's content function). */
export interface ContentSpec {
  size: number;
  seed: number;
}

/** One operation of the soak run, as data. */
export type Op =
  | { kind: "create"; path: string; content: ContentSpec; wait: boolean }
  | { kind: "overwrite"; path: string; content: ContentSpec; wait: boolean }
  | { kind: "append"; path: string; content: ContentSpec; wait: boolean }
  | { kind: "patch"; path: string; offset: number; content: ContentSpec; wait: boolean }
  | { kind: "delete"; path: string }
  | { kind: "rename"; from: string; to: string }
  | { kind: "mkdir"; path: string; files: { path: string; content: ContentSpec }[] }
  | { kind: "renameDir"; from: string; to: string }
  | { kind: "rmdir"; path: string }
  | { kind: "conflict"; path: string; other: number; content: ContentSpec; otherContent: ContentSpec }
  | { kind: "restart"; signal: "SIGTERM" | "SIGKILL"; offlineOps: number }
  | Race;

/**
 * Two operations on the same path from two devices back to back, before either is synced: this device does
 * the first (`path` is a file, or a folder for the folder variants), the `other` device the second.
 */
export interface Race {
  kind: "race";
  variant: RaceVariant;
  other: number;
  path: string;
  /** New path of a rename by this device. */
  to: string;
  /** New path of a rename by the other device (renameVsRename). */
  otherTo: string;
  /** The file inside the folder that the other device creates or edits (folder variants). */
  inner: string;
  content: ContentSpec;
}

/** The kinds of {@linkcode Race}. */
export const RACE_VARIANTS = [
  "deleteVsEdit",
  "renameVsEdit",
  "renameVsRename",
  "rmdirVsCreate",
  "renameDirVsEdit",
  "rmdirVsEdit",
] as const;
/** One of {@linkcode RACE_VARIANTS}. */
export type RaceVariant = typeof RACE_VARIANTS[number];

/** The kinds of {@linkcode Op}. */
export type OpKind = Op["kind"];

/** Where the generator is in the run. */
export interface PlanContext {
  /** Index of this operation in the run (makes new names unique). */
  index: number;
  /** Number of devices (for `conflict`'s other device). */
  devices: number;
  /** Index of the device the operation acts on. */
  device: number;
  /** How many files the run aims to keep per device at most. @default 80 */
  maxFiles?: number;
}

const BASE_WEIGHTS: Record<OpKind, number> = {
  create: 22,
  overwrite: 14,
  append: 9,
  patch: 3,
  delete: 8,
  rename: 10,
  mkdir: 9,
  renameDir: 4,
  rmdir: 3,
  conflict: 4,
  race: 6,
  restart: 3,
};

/**
 * Chooses the next operation on one device from `draws` (at least {@linkcode DRAWS_PER_OP} numbers in
 * [0, 1)) and the device's current `view`. Only paths that exist in `view` are edited, moved or deleted;
 * when the chosen kind has nothing to act on, a create is made instead. Same draws and same view give the
 * same operation.
 *
 * @example
 * ```ts
 * const op = planOp(rng.draws(DRAWS_PER_OP), { files: [], dirs: [] }, { index: 0, devices: 3, device: 0 });
 * op.kind; // "create", "mkdir" or "restart": nothing else has a target yet
 * ```
 */
export function planOp(draws: readonly number[], view: DeviceView, ctx: PlanContext): Op {
  if (draws.length < DRAWS_PER_OP) throw new RangeError(`planOp needs ${DRAWS_PER_OP} draws`);
  const d = draws;
  const maxFiles = ctx.maxFiles ?? 80;
  const files = [...view.files].sort((a, b) => a.path < b.path ? -1 : 1);
  const dirs = [...view.dirs].sort();
  const large = files.filter((f) => f.size > LARGE_BYTES);
  const weights = { ...BASE_WEIGHTS };
  if (files.length > maxFiles) {
    weights.create = 3;
    weights.mkdir = 1;
    weights.delete = 20;
    weights.rmdir = 8;
  }
  if (files.length === 0) {
    weights.overwrite =
      weights.append =
      weights.delete =
      weights.rename =
        0;
  }
  if (files.length === 0) weights.conflict = weights.race = 0;
  if (large.length === 0) weights.patch = 0;
  if (dirs.length === 0) weights.renameDir = weights.rmdir = 0;
  const kind = weighted(d[1], weights);
  const i = ctx.index;
  const file = files[indexOf(d[2], files.length)];
  const parent = d[3] < 0.35 || dirs.length === 0 ? "" : dirs[indexOf(d[4], dirs.length)];
  const wait = d[7] < 0.15;
  const content = contentSpec(d[5], d[6]);
  switch (kind) {
    case "create":
      return { kind, path: join(parent, fileName(i, d[8])), content, wait };
    case "overwrite":
      return {
        kind,
        path: file.path,
        content: file.size > LARGE_BYTES ? largeSpec(d[5], d[6]) : content,
        wait,
      };
    case "append":
      return {
        kind,
        path: file.path,
        content: { size: 1 + Math.floor(d[5] * 4000), seed: seedOf(d[6]) },
        wait,
      };
    case "patch": {
      const target = large[indexOf(d[2], large.length)];
      const size = 1 + Math.floor(d[5] * 8192);
      const offset = Math.floor(d[8] * Math.max(0, target.size - size));
      return { kind, path: target.path, offset, content: { size, seed: seedOf(d[6]) }, wait };
    }
    case "delete":
      return { kind, path: file.path };
    case "rename": {
      const sameFolder = d[9] < 0.5;
      const folder = sameFolder ? dirname(file.path) : parent;
      return { kind, from: file.path, to: join(folder, fileName(i, d[8])) };
    }
    case "mkdir": {
      const count = d[9] < 0.3 ? 0 : 1 + Math.floor(d[10] * 6);
      const path = join(parent, `d${i}`);
      const made = Array.from({ length: count }, (_, k) => ({
        path: join(path, `f${i}-${k}.txt`),
        content: {
          size: 1 + Math.floor(((d[5] + k * 0.37) % 1) * 6000),
          seed: seedOf((d[6] + k * 0.61) % 1),
        },
      }));
      return { kind, path, files: made };
    }
    case "renameDir": {
      const from = dirs[indexOf(d[4], dirs.length)];
      const toRoot = d[9] < 0.3;
      return { kind, from, to: join(toRoot ? "" : dirname(from), `d${i}`) };
    }
    case "rmdir":
      return { kind, path: dirs[indexOf(d[4], dirs.length)] };
    case "conflict": {
      const other = (ctx.device + 1 + indexOf(d[9], ctx.devices - 1)) % ctx.devices;
      return {
        kind,
        path: file.path,
        other,
        content: { size: 1 + Math.floor(d[5] * 5000), seed: seedOf(d[6]) },
        otherContent: { size: 1 + Math.floor(d[10] * 5000), seed: seedOf(d[11]) },
      };
    }
    case "race": {
      const other = (ctx.device + 1 + indexOf(d[10], ctx.devices - 1)) % ctx.devices;
      let variant = RACE_VARIANTS[indexOf(d[9], dirs.length === 0 ? 3 : RACE_VARIANTS.length)];
      const dir = dirs[indexOf(d[4], dirs.length)];
      const inside = dir === undefined ? [] : files.filter((f) => f.path.startsWith(`${dir}/`));
      if ((variant === "renameDirVsEdit" || variant === "rmdirVsEdit") && inside.length === 0) {
        variant = "rmdirVsCreate";
      }
      const folderVariant = variant === "rmdirVsCreate" || variant === "renameDirVsEdit" ||
        variant === "rmdirVsEdit";
      const path = folderVariant ? dir : file.path;
      const inner = !folderVariant
        ? ""
        : variant === "rmdirVsCreate"
        ? join(dir, fileName(i, d[8]))
        : inside[indexOf(d[11], inside.length)].path;
      return {
        kind,
        variant,
        other,
        path,
        to: join(folderVariant ? dirname(dir) : dirname(file.path), folderVariant ? `d${i}` : `r${i}.txt`),
        otherTo: join(dirname(path), `o${i}.txt`),
        inner,
        content: { size: 1 + Math.floor(d[5] * 5000), seed: seedOf(d[6]) },
      };
    }
    case "restart":
      return {
        kind,
        signal: d[5] < 0.5 ? "SIGTERM" : "SIGKILL",
        offlineOps: d[6] < 0.5 ? 0 : d[6] < 0.85 ? 1 + Math.floor(d[8] * 6) : 10 + Math.floor(d[8] * 20),
      };
  }
}

/** Mostly small files (a few bytes to 64 KiB, some empty), 3% multi-chunk files of 300 KiB to 1.2 MiB. */
function contentSpec(u: number, v: number): ContentSpec {
  if (u < 0.03) return largeSpec(u / 0.03, v);
  if (u < 0.06) return { size: 0, seed: seedOf(v) };
  if (u < 0.9) return { size: 1 + Math.floor(((u - 0.06) / 0.84) * 8192), seed: seedOf(v) };
  return { size: 8192 + Math.floor(((u - 0.9) / 0.1) * 56 * 1024), seed: seedOf(v) };
}

function largeSpec(u: number, v: number): ContentSpec {
  return { size: 300 * 1024 + Math.floor(u * 900 * 1024), seed: seedOf(v) };
}

function seedOf(u: number): number {
  return Math.floor(u * 4294967296) >>> 0 || 1;
}

/** Names with an extension, several dots, none, a space and a non-ASCII letter. */
function fileName(i: number, u: number): string {
  if (u < 0.7) return `f${i}.txt`;
  if (u < 0.8) return `n${i} caf\u00e9.md`;
  if (u < 0.9) return `a${i}.tar.gz`;
  return `noext${i}`;
}

function join(parent: string, name: string): string {
  return parent ? `${parent}/${name}` : name;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}
