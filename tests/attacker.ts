// A brute-force attacker run as its own (niced) process, so its work does not compete with the devices it slows.
// Usage: deno run -A tests/attacker.ts '{"port":N,"ca":"PEM","user":"alice"}'; prints one JSON line of results.
import { hello, logins } from "./raw_conn.ts";

/** What the attacker saw: per connection, guesses whose password was checked (`auth`), and whether it closed. */
export interface BruteForceResult {
  auth: number[];
  closed: boolean[];
}

/** 300 guesses pipelined on one connection, then 20 connections with 64 each, all at once. */
export async function bruteForce(
  options: { port: number; ca: string; user: string },
): Promise<BruteForceResult> {
  const target = { hostname: "127.0.0.1", port: options.port, ca: options.ca };
  const one = await hello(target);
  await one.send(...logins(options.user, 1, 300));
  await one.replies(300);
  const many = await Promise.all(Array.from({ length: 20 }, () => hello(target)));
  await Promise.all(many.map((c, i) => c.send(...logins(options.user, 1000 + i * 64, 64))));
  await Promise.all(many.map((c) => c.replies(64)));
  const conns = [one, ...many];
  const result = { auth: conns.map((c) => c.count("auth")), closed: conns.map((c) => c.closed) };
  for (const c of conns) {
    try {
      c.conn.close();
    } catch { /* closed */ }
  }
  return result;
}

if (import.meta.main) {
  console.log(JSON.stringify(await bruteForce(JSON.parse(Deno.args[0]))));
}
