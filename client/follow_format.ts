// A minimal readable line and JSON line for `filesync status --follow`, until the client's own formatter is used.
import { formatSize } from "../protocol/sizes.ts";
import { type ClientEvent, eventLevel, type TimedEvent } from "./events.ts";

/** A readable line for an event: its type and its main fields. */
export function formatEvent(event: ClientEvent): string {
  switch (event.type) {
    case "uploaded":
    case "downloaded":
      return `${event.type} ${event.path} (${formatSize(event.size)})`;
    case "deleted":
      return `deleted ${event.path} (${event.where === "server" ? "on the server" : "from the server"})`;
    case "moved":
      return `moved ${event.from} -> ${event.to}`;
    case "conflict":
      return `conflict: ${event.path}, other version kept as ${event.copy}`;
    case "connected":
      return `connected to ${event.server}`;
    case "offline":
      return `offline: ${event.reason}`;
    case "paused":
      return "paused: nothing is synced until filesync resume";
    case "resumed":
      return "resumed: syncing again";
    case "synced":
      return `in sync: ${event.files} files, ${formatSize(event.bytes)}`;
    case "error":
    case "notice":
      return event.message;
    default: {
      const { type, ...fields } = event;
      return `${type} ${JSON.stringify(fields)}`;
    }
  }
}

/** The JSON line of an event: `{time, type, level, message, ...fields}`, `time` in ISO 8601. */
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

/** A readable line with the local time in front: `HH:MM:SS line`. */
export function timedLine(time: number, line: string): string {
  return `${new Date(time).toTimeString().slice(0, 8)} ${line}`;
}
