// `deno task soak`: the long soak run (5,000 ops; FILESYNC_SOAK_SEED, _OPS, _TRACE=FILE for the ops as run).
import { runSoak, soakSettings, summary } from "./soak.ts";

if (import.meta.main) {
  const { seed, ops } = soakSettings(5000);
  const result = await runSoak({ seed, ops, verbose: Boolean(Deno.env.get("FILESYNC_SOAK_VERBOSE")) });
  console.log(
    `soak result: seed ${seed}: ${result.failures.length === 0 ? "PASSED" : "FAILED"}: ${summary(result)}`,
  );
  const trace = Deno.env.get("FILESYNC_SOAK_TRACE");
  if (trace) await Deno.writeTextFile(trace, result.opLines.join("\n") + "\n");
  console.log(`duration ${(result.durationMs / 1000).toFixed(1)} s`);
  if (result.failures.length > 0) {
    console.log(result.failures.join("\n"));
    console.log(result.diagnostics);
    Deno.exit(1);
  }
}
