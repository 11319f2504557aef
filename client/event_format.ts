// Turns a client event into the line a person reads, or into one JSON line (the `--json` schema).
import { formatSize } from "../protocol/sizes.ts";
import { type ClientEvent, eventLevel, type TimedEvent } from "./events.ts";

/** "on the server" (a change made here, sent) or "from the server" (a change received, applied here). */
function side(where: "server" | "here"): string {
  return where === "server" ? "on the server" : "from the server";
}

/**
 * The readable line of an event (without the time), in the client's wording since before events existed, so
 * scripts that read its output keep working.
 *
 * @example
 * ```ts
 * formatEvent({ type: "deleted", path: "a.txt", kind: "file", where: "here" }); // "deleted a.txt (from the server)"
 * ```
 */
export function formatEvent(event: ClientEvent): string {
  switch (event.type) {
    case "uploaded": {
      const sent = event.sent !== undefined && event.sent < event.size
        ? `, ${formatSize(event.sent)} sent`
        : "";
      return `uploaded ${event.path} (${formatSize(event.size)}${sent}${
        event.note ? `, ${event.note}` : ""
      })`;
    }
    case "downloaded": {
      const got = event.fetched !== undefined && event.fetched < event.size
        ? `, ${formatSize(event.fetched)} received`
        : "";
      return `downloaded ${event.path} (${formatSize(event.size)}${got}${
        event.note ? `, ${event.note}` : ""
      })`;
    }
    case "deleted":
      return `deleted ${event.path} (${side(event.where)}${event.note ? `: ${event.note}` : ""})`;
    case "moved": {
      const files = event.files === undefined
        ? ""
        : `, ${event.files} ${event.files === 1 ? "file" : "files"}`;
      return `moved ${event.from} -> ${event.to} (${side(event.where)}${
        event.note ? `: ${event.note}` : ""
      }${files})`;
    }
    case "conflict": {
      const whose = event.copyHolds === "here" ? "this device's version" : "their version";
      const other = event.device === undefined ? "on another device" : `on "${event.device}"`;
      return `conflict: ${event.path} changed here and ${other}; kept ${whose} as ${event.copy}` +
        (event.note ? ` (${event.note})` : "");
    }
    case "restored":
      return `restored ${event.path}${event.version ? ` (version ${event.version})` : ""}`;
    case "share": {
      const what = `${event.owner}'s "${event.path}"`;
      const how = event.access === "write" ? "read-write" : "read-only";
      if (event.change === "added") {
        return `share: ${what} is shared with you (${how}), shown as "${event.mount}"`;
      }
      if (event.change === "access") return `share: ${what} is now ${how} for you ("${event.mount}")`;
      return `share: ${what} is no longer shared with you ("${event.mount}")`;
    }
    case "locked":
      return `${event.path} is locked by ${event.user} on device "${event.device}": read-only here until the ` +
        "lock ends";
    case "unlocked": {
      if (event.mine) {
        const how = event.how === "expired"
          ? "ran out"
          : event.how === "forced"
          ? `was forced open on device "${event.by ?? "?"}"`
          : "ended";
        return `this device's lock on ${event.path} ${how}`;
      }
      const how = event.how === "expired" ? "ran out" : event.how === "forced" ? "was forced open" : "ended";
      return `the lock on ${event.path} ${how}: it can be changed here again`;
    }
    case "connected":
      return `connected to ${event.server}`;
    case "offline":
      return event.lost
        ? `disconnected from server (${event.reason}); reconnecting`
        : `${event.reason}; will keep trying (working offline meanwhile)`;
    case "reconnecting":
      return `reconnecting to ${event.server} (next try in ${formatDelay(event.inMs)})`;
    case "paused":
      return "paused: nothing is synced until filesync resume";
    case "resumed":
      return "resumed: syncing again";
    case "safety_stop":
      return event.detail;
    case "safety_lifted":
      return event.reason === "mass_delete"
        ? "safety stop lifted: no mass delete is pending any more; syncing as usual"
        : `the synced folder is back${event.dir ? ` (${event.dir})` : ""}; syncing resumes`;
    case "error":
    case "notice":
      return event.message;
    case "plan":
      return `plan: ${event.uploads.files} uploads (${
        formatSize(event.uploads.bytes)
      }), ${event.downloads.files} ` +
        `downloads (${formatSize(event.downloads.bytes)}), ${event.deletes} deletes, ${event.moves} moves`;
    case "transfer": {
      const percent = event.total > 0 ? Math.floor((event.done / event.total) * 100) : 100;
      return `${event.direction === "up" ? "uploading" : "downloading"} ${event.path}: ${percent}% of ` +
        formatSize(event.total);
    }
    case "synced":
      return `in sync: ${event.files} files, ${formatSize(event.bytes)}`;
  }
}

/** A delay for a line: "250 ms", "4 s". */
function formatDelay(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}

/**
 * The JSON line of an event (no newline): `{time, type, level, message, ...fields}` with `time` in ISO 8601 and
 * `message` the readable line. An `error` event's own `message` is that line too.
 *
 * @example
 * ```ts
 * toJsonLine({ type: "connected", server: "h:1", user: "a", device: "d", time: 0 });
 * // {"time":"1970-01-01T00:00:00.000Z","type":"connected","level":"info","message":"connected to h:1",...}
 * ```
 */
export function toJsonLine(event: TimedEvent): string {
  const { time, type, ...fields } = event;
  return JSON.stringify({
    time: new Date(time).toISOString(),
    type,
    level: eventLevel(event),
    message: formatEvent(event),
    ...fields,
  });
}

/** The local time of the last line, and the second it belongs to: formatting a Date costs more than the line. */
let clock = { second: -1, text: "" };

/** A readable line with the local time in front: `HH:MM:SS line`. */
export function timedLine(time: number, line: string): string {
  const second = Math.floor(time / 1000);
  if (second !== clock.second) clock = { second, text: new Date(time).toTimeString().slice(0, 8) };
  return `${clock.text} ${line}`;
}
