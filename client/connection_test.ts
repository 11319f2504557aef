// Tests for opening a connection to the first reachable server of a list.
import assert from "node:assert/strict";
import { openFirstReachable, UnreachableError } from "./connection.ts";

/** A loopback port nothing listens on (taken and let go again). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("openFirstReachable() tries every server and names each one's reason when none answers", async () => {
  const [a, b] = [closedPort(), closedPort()];
  await assert.rejects(
    () => openFirstReachable([{ hostname: "127.0.0.1", port: a }, { hostname: "127.0.0.1", port: b }]),
    (error: Error) =>
      error instanceof UnreachableError &&
      error.message === `Cannot reach server 127.0.0.1:${a}: connection refused (is the server running?); ` +
          `Cannot reach server 127.0.0.1:${b}: connection refused (is the server running?)`,
  );
});
