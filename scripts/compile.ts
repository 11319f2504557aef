// `deno task compile`: one filesync executable per platform (deno compile --target …) and their SHA-256 sums.
import { parseArgs } from "node:util";
import { basename, join } from "node:path";

/** The platforms a release is built for (Deno's `deno compile --target` names). */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** One of {@linkcode TARGETS}. */
export type Target = typeof TARGETS[number];

/** Name of the file that lists the SHA-256 of every release file, in `sha256sum` format. */
export const SUMS_FILE = "SHA256SUMS";

/**
 * File name of the executable for a target: `filesync-TARGET`, with `.exe` for Windows.
 *
 * @example
 * ```ts
 * binaryName("x86_64-pc-windows-msvc"); // "filesync-x86_64-pc-windows-msvc.exe"
 * ```
 */
export function binaryName(target: Target): string {
  return `filesync-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * The `deno compile` arguments for one target. The permissions and `--unstable-kv` are those of
 * `deno task filesync`; FFI (libcrypto, copy_file_range) is part of `--allow-all`. Nothing is loaded at run
 * time that the module graph does not name, so no `--include` is needed.
 */
export function compileArgs(target: Target, outDir: string): string[] {
  return [
    "compile",
    "--allow-all",
    "--unstable-kv",
    "--target",
    target,
    "--output",
    join(outDir, binaryName(target)),
    "main.ts",
  ];
}

/**
 * Lines of a `sha256sum`-style list (`HEX  NAME`, sorted by name) for the given files.
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("dist/SHA256SUMS", await sumsText(["dist/filesync.js"]));
 * ```
 */
export async function sumsText(files: string[]): Promise<string> {
  const lines: string[] = [];
  for (const file of [...files].sort((a, b) => basename(a).localeCompare(basename(b)))) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(file)));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    lines.push(`${hex}  ${basename(file)}`);
  }
  return lines.map((line) => line + "\n").join("");
}

const USAGE = `Usage: deno task compile [--target TARGET]… [--out DIR]

Builds dist/filesync-TARGET (.exe on Windows) for every target, or for those given
(${TARGETS.join(", ")}), then writes DIR/${SUMS_FILE} over the executables and dist/filesync.js
(when \`deno task bundle\` made it). The first build of a target downloads Deno's runtime for it.`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      target: { type: "string", multiple: true },
      out: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const outDir = values.out ?? "dist";
  const targets = (values.target ?? [...TARGETS]) as string[];
  const unknown = targets.find((t) => !(TARGETS as readonly string[]).includes(t));
  if (unknown) {
    console.error(`compile: unknown target "${unknown}" (one of ${TARGETS.join(", ")})`);
    return 2;
  }
  await Deno.mkdir(outDir, { recursive: true });
  for (const target of targets as Target[]) {
    console.log(`compile: ${target}`);
    const { code } = await new Deno.Command(Deno.execPath(), { args: compileArgs(target, outDir) }).spawn()
      .status;
    if (code !== 0) {
      console.error(`compile: deno compile for ${target} failed (exit ${code})`);
      return 1;
    }
  }
  const files: string[] = [];
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile && (entry.name.startsWith("filesync-") || entry.name === "filesync.js")) {
      files.push(join(outDir, entry.name));
    }
  }
  const tmp = join(outDir, `${SUMS_FILE}.tmp`);
  await Deno.writeTextFile(tmp, await sumsText(files));
  await Deno.rename(tmp, join(outDir, SUMS_FILE));
  console.log(`compile: ${files.length} files, sums in ${join(outDir, SUMS_FILE)}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
