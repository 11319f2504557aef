// End-to-end benchmark (`deno task bench`): real server and clients on loopback, one markdown table row per scenario.
// Runs Syncthing beside filesync on the same data when it is installed, and prints the ratio per workload.
// Usage: deno task bench [--quick] [--only NAME[,NAME]] [--dir PATH] [--out FILE] [--no-syncthing]
import { parseArgs } from "node:util";
import { BenchTimeout, liveWorlds } from "./bench_world.ts";
import { formatRatio, judge, speedRatio, TARGETS } from "./compare.ts";
import { type BenchContext, type Row, SCENARIOS } from "./scenarios.ts";
import { findSyncthing, livePairs } from "./syncthing.ts";
import { stopScaleServices } from "./scale_services.ts";

const HELP = `Usage: deno task bench [--quick] [--only NAME[,NAME]] [--dir PATH] [--out FILE] [--no-syncthing]
  --quick         small sizes (a sanity run of a few minutes)
  --only          run only these scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}
  --dir           where the scenario folders live, Syncthing's homes and folders too (default /dev/shm, else
                  the temp folder)
  --out           also write the markdown report to FILE
  --no-syncthing  do not run Syncthing beside filesync (it runs when \`syncthing\` is on PATH, or
                  FILESYNC_BENCH_SYNCTHING names the binary)`;

function readFileOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

function loadAverage(): string {
  return readFileOr("/proc/loadavg", "? ? ?").split(" ").slice(0, 3).join(" ");
}

function machine(): string[] {
  const cpuinfo = readFileOr("/proc/cpuinfo", "");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const memKb = Number(/MemTotal:\s+(\d+) kB/.exec(readFileOr("/proc/meminfo", ""))?.[1] ?? NaN);
  return [
    `- machine: ${navigator.hardwareConcurrency} CPUs (nproc), ${model}, ${
      (memKb / 1024 / 1024).toFixed(1)
    } GiB RAM, ` +
    `${Deno.build.os} ${Deno.osRelease()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
  ];
}

function defaultDir(): string {
  try {
    if (Deno.statSync("/dev/shm").isDirectory) return "/dev/shm";
  } catch { /* no /dev/shm */ }
  return Deno.env.get("TMPDIR") ?? "/tmp";
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

function failedRow(name: string, target: string, error: unknown): Row {
  const message = error instanceof Error ? error.message : String(error);
  const timeout = error instanceof BenchTimeout;
  return {
    name,
    wallSeconds: null,
    result: timeout ? "TIMEOUT" : "ERROR",
    aToServer: "—",
    serverToB: "—",
    reverse: "—",
    cpu: "—",
    rss: "—",
    target,
    verdict: "miss",
    notes: [`${timeout ? "Timed out" : "Failed"}: ${message}`],
  };
}

/** Sets a row's verdict from issue #9's target for it, when there is one and the row says what it measured. */
function applyTarget(row: Row): void {
  const target = TARGETS[row.name];
  if (!target || !row.figures || row.verdict === "skipped") return;
  const figures = { ...row.figures, syncthingSeconds: row.syncthing?.seconds ?? null };
  const { verdict, reasons } = judge(target, figures);
  if (row.verdict !== "miss") row.verdict = verdict;
  if (reasons.length > 0) row.notes.push(`Target: ${reasons.join("; ")}.`);
}

async function fsType(dir: string): Promise<string> {
  try {
    const out = await new Deno.Command("df", { args: ["-T", "-P", dir], stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)?.split(/\s+/)[1] ?? "?";
  } catch {
    return "?";
  }
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string" },
        dir: { type: "string" },
        out: { type: "string" },
        "no-syncthing": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const wanted = values.only ? values.only.split(",").map((s) => s.trim()).filter(Boolean) : null;
  const unknown = wanted?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) {
    console.error(`bench: unknown scenario(s) ${unknown.join(", ")}\n${HELP}`);
    return 2;
  }
  const baseDir = values.dir ?? defaultDir();
  await Deno.mkdir(baseDir, { recursive: true });
  const syncthing = values["no-syncthing"] ? null : await findSyncthing();
  const ctx: BenchContext = { baseDir, quick: values.quick, tlsMiBps: null, syncthing };

  Deno.addSignalListener("SIGINT", async () => {
    console.error("bench: interrupted; cleaning up");
    await Promise.all([...liveWorlds, ...livePairs].map((w) => w[Symbol.asyncDispose]()));
    await stopScaleServices();
    Deno.exit(130);
  });

  const header = [
    `# filesync benchmark${values.quick ? " (--quick)" : ""}`,
    "",
    ...machine(),
    `- command: \`deno task bench${Deno.args.length ? " " + Deno.args.join(" ") : ""}\``,
    `- date: ${new Date().toISOString()}`,
    `- folders (server data, A, B; Syncthing's homes and folders) in: ${baseDir} (${await fsType(baseDir)})`,
    `- Syncthing: ${
      syncthing
        ? `${syncthing.version} (two instances on loopback, beside filesync on the same data)`
        : values["no-syncthing"]
        ? "not run (--no-syncthing)"
        : "not found (install it, e.g. `apt-get install syncthing`, to compare): filesync ran alone"
    }`,
    `- load average (1/5/15 min) at start: ${loadAverage()}`,
  ];
  const rows: Row[] = [];
  const loads: string[] = [];
  const runStart = performance.now();
  for (const scenario of SCENARIOS) {
    if (wanted && !wanted.includes(scenario.name)) continue;
    const started = performance.now();
    const loadBefore = loadAverage();
    console.error(`bench: ${scenario.name} …`);
    let got: Row[];
    try {
      const ran = await scenario.run(ctx);
      got = Array.isArray(ran) ? ran : [ran];
    } catch (error) {
      got = [failedRow(scenario.name, scenario.target, error)];
    }
    const total = (performance.now() - started) / 1000;
    loads.push(`${scenario.name}: ${loadBefore} → ${loadAverage()}`);
    for (const row of got) {
      applyTarget(row);
      console.error(`bench: ${row.name}: ${row.result} (${row.verdict})`);
      rows.push(row);
    }
    got.at(-1)!.notes.push(`Scenario total incl. setup and cleanup: ${total.toFixed(1)} s.`);
    console.error(`bench: ${scenario.name} done in ${total.toFixed(1)} s`);
  }
  await stopScaleServices();

  const lines = [
    ...header,
    `- load average at end: ${loadAverage()}; total run time ${
      ((performance.now() - runStart) / 1000).toFixed(0)
    } s`,
    "",
    "| scenario | wall s | result | Syncthing | ratio | A→srv | srv→B | srv→A / B→srv | CPU s srv / A / B | " +
    "peak RSS MB srv / A / B | Syncthing CPU s A / B | Syncthing RSS MB A / B | target | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${
        [
          r.name,
          r.wallSeconds === null ? "—" : r.wallSeconds.toFixed(3),
          r.result,
          r.syncthing?.result ?? "—",
          r.syncthing ? formatRatio(speedRatio(r.wallSeconds, r.syncthing.seconds)) : "—",
          r.aToServer,
          r.serverToB,
          r.reverse,
          r.cpu,
          r.rss,
          r.syncthing?.cpu ?? "—",
          r.syncthing?.rss ?? "—",
          r.target,
          r.verdict,
        ].map(cell).join(" | ")
      } |`
    ),
    "",
    "Byte columns are frame bytes on the wire per hop (server's per-device counters), from just before the change " +
    "until the system was idle again. CPU is the delta over the same interval (user+system, all threads); peak RSS " +
    "is VmHWM over each process's life (fresh processes per scenario). Syncthing: the same generated files on two " +
    "fresh instances (A → B, no server hop) after filesync's run, its watcher off; its clock starts when the " +
    "change is in A's folder and the scan is requested (POST /rest/db/scan), filesync's at the change itself " +
    "(its watcher sees it); both stop when B has the files (polled on disk), then Syncthing must also report " +
    "convergence over REST. ratio = filesync's speed / Syncthing's (Syncthing's time / filesync's; > 1: " +
    "filesync is faster). Syncthing CPU is over its scan request … REST convergence.",
    "",
    "## Notes",
    "",
    ...rows.map((r) => `- **${r.name}**: ${[...r.notes, ...(r.syncthing?.notes ?? [])].join(" ")}`),
    `- load average before → after each scenario: ${loads.join("; ")}`,
    "",
  ];
  const report = lines.join("\n");
  console.log(report);
  if (values.out) await Deno.writeTextFile(values.out, report);
  return 0;
}

Deno.exit(await main());
