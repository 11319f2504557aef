// The client's progress display: a live bar on a terminal, a plain line now and then otherwise, or nothing.
// @ts-types="@types/cli-progress"
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import process from "node:process";
import type { EventSink, EventType } from "./events.ts";
import {
  barText,
  BIG_INITIAL_BYTES,
  fraction,
  progressLine,
  ProgressModel,
  type ProgressSnapshot,
} from "./progress_model.ts";

/** `bar`: a live bar (a terminal); `lines`: a plain line every {@linkcode LINE_EVERY_MS}; `off`: nothing. */
export type ProgressMode = "bar" | "lines" | "off";

/** Time between two plain progress lines. */
export const LINE_EVERY_MS = 5000;

/** How often the display looks at the model (to start, update or end what it shows). */
const TICK_MS = 250;

/** The events the display follows. */
const FOLLOWED = new Set<EventType>(["plan", "transfer", "uploaded", "downloaded", "synced", "offline"]);

/**
 * The mode for the client's flags: nothing with `--json` (its `transfer` events are the progress) or `--quiet`,
 * a bar on a terminal, plain lines otherwise.
 *
 * @example
 * ```ts
 * progressModeOf({ terminal: Deno.stdout.isTerminal() }); // "bar" at a terminal
 * ```
 */
export function progressModeOf(flags: { json?: boolean; quiet?: boolean; terminal: boolean }): ProgressMode {
  if (flags.json || flags.quiet) return "off";
  return flags.terminal ? "bar" : "lines";
}

/** What the display writes the bar to: a Node-style stream (`process.stdout`). */
export interface BarStream {
  /** Writes text as it is. */
  write(text: string): unknown;
  /** True for a terminal (the bar is drawn only there). */
  isTTY?: boolean;
  /** The terminal's width (lines are cut to it). @default 80 */
  columns?: number;
}

/** Options of {@linkcode ProgressDisplay}. */
export interface ProgressDisplayOptions {
  /** What to show. */
  mode: ProgressMode;
  /** Where lines go in the `lines` and `off` modes. @default console.log */
  write?: (line: string) => void;
  /** Dresses the display's own lines (the time in front, say); lines given to `write` go as they are. @default as is */
  stamp?: (line: string) => string;
  /** Where the bar and the lines go in the `bar` mode. @default process.stdout */
  stream?: BarStream;
  /** The clock. @default Date.now */
  now?: () => number;
  /** Time between two plain lines. @default LINE_EVERY_MS */
  lineEveryMs?: number;
  /** The model behind it. @default a new one */
  model?: ProgressModel;
}

/**
 * Shows the progress of the client's transfers from its events. Subscribe {@linkcode ProgressDisplay.sink} to
 * the client's events and send every other line the client prints through {@linkcode ProgressDisplay.write}, so
 * that lines go above the bar instead of through it; {@linkcode ProgressDisplay.stop} clears the bar.
 *
 * @example
 * ```ts
 * const progress = new ProgressDisplay({ mode: progressModeOf({ terminal: Deno.stdout.isTerminal() }) });
 * events.subscribe(progress.sink);
 * events.subscribe(eventPrinter({ write: progress.write }));
 * ```
 */
export class ProgressDisplay {
  /** What it shows. */
  readonly mode: ProgressMode;
  #model: ProgressModel;
  #now: () => number;
  #lineEveryMs: number;
  #writeLine: (line: string) => void;
  #stamp: (line: string) => string;
  #stream: BarStream;
  #timer: ReturnType<typeof setInterval> | undefined;
  #multi: MultiBar | null = null;
  #bar: SingleBar | null = null;
  /** The run the plain lines are about (its start), and when the last line was printed. */
  #lines = { run: -1, at: 0 };

  /** A display; nothing shows until events come. */
  constructor(options: ProgressDisplayOptions) {
    this.mode = options.mode;
    // A bar is cleared when done; plain lines stay, so a small initial sync prints none unless it takes a while.
    this.#model = options.model ??
      new ProgressModel({ initialMinBytes: options.mode === "lines" ? BIG_INITIAL_BYTES : 0 });
    this.#now = options.now ?? Date.now;
    this.#lineEveryMs = options.lineEveryMs ?? LINE_EVERY_MS;
    this.#writeLine = options.write ?? console.log;
    this.#stamp = options.stamp ?? ((line) => line);
    this.#stream = options.stream ?? process.stdout;
  }

  /** The sink to subscribe to the client's events. */
  readonly sink: EventSink = (event) => {
    if (this.mode === "off" || !FOLLOWED.has(event.type)) return;
    this.#model.observe(event);
    this.tick();
  };

  /** Prints one line of the client's output (above the bar while it shows). */
  readonly write = (line: string): void => {
    if (this.mode !== "bar") this.#writeLine(line);
    else if (this.#multi) {
      this.#multi.log(`${line}\n`);
      this.#multi.update(); // at once: the line above, the bar redrawn below it
    } else this.#stream.write(`${line}\n`);
  };

  /** Brings what is shown up to date (called on events and by a timer while work runs). */
  tick(): void {
    const now = this.#now();
    const snapshot = this.#model.visible(now) ? this.#model.snapshot(now) : null;
    if (this.#model.active(now)) this.#startTimer();
    else this.#stopTimer();
    // A run that just finished is shown once more as it ended (if it was shown at all), then the bar goes.
    const finished = snapshot ? null : this.#model.takeFinished();
    if (this.mode === "bar") {
      if (finished && this.#multi) this.#showBar(finished);
      this.#showBar(snapshot);
    } else if (this.mode === "lines") {
      if (snapshot) this.#showLine(snapshot, now);
      else if (finished && this.#lines.run === finished.startedAt) this.#showLine(finished, Infinity);
    }
  }

  /** Clears the bar and stops the timer (the client stopped). */
  stop(): void {
    this.#stopTimer();
    this.#showBar(null);
  }

  #showLine(snapshot: ProgressSnapshot, now: number): void {
    if (this.#lines.run === snapshot.startedAt && now - this.#lines.at < this.#lineEveryMs) return;
    this.#lines = { run: snapshot.startedAt, at: now };
    this.#writeLine(this.#stamp(progressLine(snapshot)));
  }

  #showBar(snapshot: ProgressSnapshot | null): void {
    if (snapshot === null) {
      if (!this.#multi) return;
      const multi = this.#multi;
      this.#multi = null;
      this.#bar = null;
      multi.update(); // lines still waiting go out above the bar, then it is cleared
      multi.stop();
      return;
    }
    const value = Math.round(fraction(snapshot) * 1000);
    const payload = { text: barText(snapshot) };
    if (!this.#multi) {
      this.#multi = new MultiBar({
        stream: this.#stream as NodeJS.WritableStream,
        format: "{bar} {percentage}% | {text}",
        barsize: 20,
        clearOnComplete: true,
        // Lines longer than the terminal are cut (the terminal's own wrapping stays on: a killed client
        // leaves the terminal as it was).
        linewrap: true,
        hideCursor: false,
        // Drawn again after each line printed above it, changed or not.
        forceRedraw: true,
        fps: 10,
      }, Presets.shades_classic);
      this.#bar = this.#multi.create(1000, value, payload);
      this.#multi.update(); // drawn at once, not at the library's first tick
    } else this.#bar!.update(value, payload);
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.tick(), TICK_MS);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
