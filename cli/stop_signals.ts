// The signals that stop a long-running command (Ctrl-C, and SIGTERM from systemd or kill), on every platform.

/**
 * The signals that ask a long-running command to stop here: SIGINT and SIGTERM, or on Windows (where Deno
 * listens only for SIGINT and SIGBREAK) SIGINT and SIGBREAK.
 */
export function stopSignals(os: typeof Deno.build.os = Deno.build.os): Deno.Signal[] {
  return os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
}

/**
 * Calls `stop` when one of {@linkcode stopSignals} arrives; returns the function that removes the listeners.
 *
 * @example
 * ```ts
 * const off = onStopSignals(() => server.close());
 * // …later
 * off();
 * ```
 */
export function onStopSignals(stop: () => void): () => void {
  const signals = stopSignals();
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  };
}
