// CI's short soak run: 300 seeded random operations on three real devices, restarts and server kill -9.
import { runSoak, soakSettings } from "./soak/soak.ts";

Deno.test("a seeded random run of three devices with restarts and a server kill -9 converges and loses nothing", async () => {
  const { seed, ops } = soakSettings(300);
  const result = await runSoak({ seed, ops, verbose: Boolean(Deno.env.get("FILESYNC_SOAK_VERBOSE")) });
  if (result.failures.length > 0) {
    throw new Error(
      `soak run with seed ${seed} failed (replay: FILESYNC_SOAK_SEED=${seed} FILESYNC_SOAK_OPS=${ops} ` +
        `deno test -A --unstable-kv tests/soak_test.ts):\n${
          result.failures.join("\n")
        }\n${result.diagnostics}`,
    );
  }
});
