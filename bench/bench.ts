// End-to-end benchmark (`deno task bench`): real server and clients on loopback, one markdown table row per scenario.
// Usage: deno task bench [--quick] [--only NAME[,NAME]] [--dir PATH] [--out FILE]
import { parseArgs } from "node:util";
import { BenchTimeout, liveWorlds } from "./bench_world.ts";
import { type BenchContext, type Row, SCENARIOS } from "./scenarios.ts";

const HELP = `Usage: deno task bench [--quick] [--only NAME[,NAME]] [--dir PATH] [--out FILE]
  --quick      small sizes (a sanity run of about a minute)
  --only       run only these scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}
  --dir        where the scenario folders live (default /dev/shm, else the temp folder)
  --out        also write the markdown report to FILE`;

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
  const ctx: BenchContext = { baseDir, quick: values.quick, tlsMiBps: null };

  Deno.addSignalListener("SIGINT", async () => {
    console.error("bench: interrupted; cleaning up");
    await Promise.all([...liveWorlds].map((w) => w[Symbol.asyncDispose]()));
    Deno.exit(130);
  });

  const header = [
    `# filesync benchmark${values.quick ? " (--quick)" : ""}`,
    "",
    ...machine(),
    `- command: \`deno task bench${Deno.args.length ? " " + Deno.args.join(" ") : ""}\``,
    `- date: ${new Date().toISOString()}`,
    `- folders (server data, A, B) in: ${baseDir}`,
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
    let row: Row;
    try {
      row = await scenario.run(ctx);
    } catch (error) {
      row = failedRow(scenario.name, scenario.target, error);
    }
    const total = (performance.now() - started) / 1000;
    loads.push(`${scenario.name}: ${loadBefore} → ${loadAverage()}`);
    row.notes.push(`Scenario total incl. setup and cleanup: ${total.toFixed(1)} s.`);
    console.error(`bench: ${scenario.name}: ${row.result} (${row.verdict}) in ${total.toFixed(1)} s`);
    rows.push(row);
  }

  const lines = [
    ...header,
    `- load average at end: ${loadAverage()}; total run time ${
      ((performance.now() - runStart) / 1000).toFixed(0)
    } s`,
    "",
    "| scenario | wall s | result | A→srv | srv→B | srv→A / B→srv | CPU s srv / A / B | peak RSS MB srv / A / B | target | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${
        [
          r.name,
          r.wallSeconds === null ? "—" : r.wallSeconds.toFixed(3),
          r.result,
          r.aToServer,
          r.serverToB,
          r.reverse,
          r.cpu,
          r.rss,
          r.target,
          r.verdict,
        ].map(cell).join(" | ")
      } |`
    ),
    "",
    "Byte columns are frame bytes on the wire per hop (server's per-device counters), from just before the change " +
    "until the system was idle again. CPU is the delta over the same interval (user+system, all threads); peak RSS " +
    "is VmHWM over each process's life (fresh processes per scenario).",
    "",
    "## Notes",
    "",
    ...rows.map((r) => `- **${r.name}**: ${r.notes.join(" ")}`),
    `- load average before → after each scenario: ${loads.join("; ")}`,
    "",
  ];
  const report = lines.join("\n");
  console.log(report);
  if (values.out) await Deno.writeTextFile(values.out, report);
  return 0;
}

Deno.exit(await main());
