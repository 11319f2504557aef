// The client's output: a sink that prints each event as a readable line or a JSON line, filtered by verbosity.
import { eventLevel, type EventSink, shown } from "./events.ts";
import { formatEvent, timedLine, toJsonLine } from "./event_format.ts";

/** How much the client prints: `quiet` errors and conflicts only, `verbose` adds detail. */
export type Verbosity = "quiet" | "normal" | "verbose";

/** Options of {@linkcode eventPrinter}. */
export interface PrinterOptions {
  /** JSON lines (`--json`) instead of readable ones. @default false */
  json?: boolean;
  /** @default "normal" */
  verbosity?: Verbosity;
  /** Where a line goes. @default console.log */
  write?: (line: string) => void;
}

/**
 * A sink that prints the events `verbosity` shows: `HH:MM:SS line`, or one JSON line each.
 *
 * @example
 * ```ts
 * events.subscribe(eventPrinter({ json: true }));
 * ```
 */
export function eventPrinter(options: PrinterOptions = {}): EventSink {
  const write = options.write ?? console.log;
  const verbosity = options.verbosity ?? "normal";
  return (event) => {
    if (!shown(eventLevel(event), verbosity)) return;
    write(options.json ? toJsonLine(event) : timedLine(event.time, formatEvent(event)));
  };
}
