// `--notify`: desktop notifications through notify-send for what a person should see, downloads summarised.
import { delimiter, join } from "node:path";
import type { EventSink, TimedEvent } from "./events.ts";
import { formatEvent } from "./event_format.ts";

/** The program that shows a notification (libnotify's). */
export const NOTIFY_PROGRAM = "notify-send";
/** Said once when it is missing. */
export const NOTIFY_MISSING = `${NOTIFY_PROGRAM} not found: no desktop notifications`;
/** Downloads are shown at most this often, as one summary. */
export const DOWNLOAD_SUMMARY_MS = 5000;
/** Notifications being shown at once; more are dropped (a burst must not start hundreds of processes). */
const MAX_RUNNING = 4;

/** One notification: a title and a body. */
export interface Notification {
  title: string;
  body: string;
  /** notify-send's urgency. */
  urgency: "low" | "normal" | "critical";
}

/**
 * The notification an event gives, or null: conflicts, errors, safety stops, shares and locks by other devices
 * are shown; downloads are summarised by {@linkcode desktopNotifier}; the rest is not shown.
 */
export function notificationOf(event: TimedEvent): Notification | null {
  const body = formatEvent(event);
  switch (event.type) {
    case "conflict":
      return { title: "filesync: conflict", body, urgency: "normal" };
    case "error":
      return { title: "filesync: error", body, urgency: "critical" };
    case "safety_stop":
      return { title: "filesync: safety stop", body, urgency: "critical" };
    case "share":
      return { title: "filesync: share", body, urgency: "normal" };
    case "locked":
      return { title: "filesync: locked", body, urgency: "low" };
    default:
      return null;
  }
}

/** The summary of downloads since the last one: the path when there is one, else the count. */
export function downloadSummary(paths: readonly string[]): Notification {
  const body = paths.length === 1 ? `downloaded ${paths[0]}` : `downloaded ${paths.length} files`;
  return { title: "filesync: downloaded", body, urgency: "low" };
}

/** Whether `program` is an executable file in one of the PATH folders. */
export function onPath(program: string, path = Deno.env.get("PATH") ?? ""): boolean {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(join(dir, program));
      if (info.isFile && (info.mode === null || (info.mode & 0o111) !== 0)) return true;
    } catch {
      // not in this folder
    }
  }
  return false;
}

/** Options of {@linkcode desktopNotifier}. */
export interface NotifierOptions {
  /** Shows one notification (never waited for). @default runs notify-send with arguments, no shell */
  show?: (notification: Notification) => Promise<void>;
  /** Told once when notify-send is missing (or cannot be started). */
  onMissing: (line: string) => void;
  /** Whether notify-send is there. @default looked up on PATH */
  available?: boolean;
  /** @default DOWNLOAD_SUMMARY_MS */
  summaryMs?: number;
  /** Runs `fn` after `ms`; returns what cancels it. @default an unref'd setTimeout */
  schedule?: (fn: () => void, ms: number) => () => void;
}

/** A timer that does not keep the process alive. */
function unrefTimeout(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  Deno.unrefTimer(timer);
  return () => clearTimeout(timer);
}

/** Runs notify-send with the notification as arguments; resolves when it exited. */
async function runNotifySend(n: Notification): Promise<void> {
  const child = new Deno.Command(NOTIFY_PROGRAM, {
    args: ["--app-name=filesync", `--urgency=${n.urgency}`, "--", n.title, n.body],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await child.status;
}

/**
 * A sink that shows desktop notifications, never blocking what emits: each runs in the background, at most
 * {@linkcode MAX_RUNNING} at once. Downloads are gathered and shown as one summary at most every `summaryMs`.
 * When notify-send is missing it says {@linkcode NOTIFY_MISSING} once (at creation) and shows nothing.
 */
export function desktopNotifier(options: NotifierOptions): { sink: EventSink; stop: () => void } {
  const show = options.show ?? runNotifySend;
  const summaryMs = options.summaryMs ?? DOWNLOAD_SUMMARY_MS;
  const schedule = options.schedule ?? unrefTimeout;
  let enabled = options.available ?? onPath(NOTIFY_PROGRAM);
  if (!enabled) options.onMissing(NOTIFY_MISSING);
  let running = 0;
  let downloads: string[] = [];
  let cancel: (() => void) | undefined;
  const send = (n: Notification) => {
    if (!enabled || running >= MAX_RUNNING) return;
    running++;
    show(n).catch((error) => {
      if (error instanceof Deno.errors.NotFound && enabled) {
        enabled = false;
        options.onMissing(NOTIFY_MISSING);
      }
    }).finally(() => running--);
  };
  const summarise = () => {
    cancel = undefined;
    if (downloads.length > 0) send(downloadSummary(downloads));
    downloads = [];
  };
  const sink: EventSink = (event) => {
    if (!enabled) return;
    if (event.type === "downloaded") {
      downloads.push(event.path);
      cancel ??= schedule(summarise, summaryMs);
      return;
    }
    const n = notificationOf(event);
    if (n) send(n);
  };
  return {
    sink,
    stop: () => {
      cancel?.();
      cancel = undefined;
      downloads = [];
    },
  };
}
