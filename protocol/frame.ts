// Binary-safe frame codec: 4-byte big-endian length, 1-byte frame type, then the body.

/** A frame holding one JSON message. */
export const FRAME_JSON = 1;
/** A frame holding a JSON header followed by raw bytes (chunk data, manifests). */
export const FRAME_DATA = 2;
/** Largest frame accepted by default (type byte and body), checked before the body is read. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Deepest nesting of JSON arrays and objects accepted in a message (ours need 5). */
export const MAX_JSON_DEPTH = 32;

/** One decoded frame: a JSON message and, for data frames, its bytes. */
export interface Frame {
  message: Record<string, unknown>;
  data?: Uint8Array;
}

/** Thrown for bytes that are not a valid frame; the connection must be closed after it. */
export class FrameError extends Error {
  override name = "FrameError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a message (and optional bytes) as one frame.
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ id: 1, op: "HELLO" });
 * ```
 */
export function encodeFrame(message: Record<string, unknown>, data?: Uint8Array): Uint8Array {
  const parts = encodeFrameParts(message, data);
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts[0].length + parts[1].length);
  out.set(parts[0]);
  out.set(parts[1], parts[0].length);
  return out;
}

/**
 * Encodes a frame as its header-and-JSON part followed by the data bytes, without copying the data: writing
 * the parts in order gives the same bytes as {@linkcode encodeFrame}.
 */
export function encodeFrameParts(message: Record<string, unknown>, data?: Uint8Array): Uint8Array[] {
  const json = encoder.encode(JSON.stringify(message));
  if (data === undefined) {
    const out = new Uint8Array(5 + json.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, 1 + json.length);
    out[4] = FRAME_JSON;
    out.set(json, 5);
    return [out];
  }
  const head = new Uint8Array(9 + json.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, 5 + json.length + data.length);
  head[4] = FRAME_DATA;
  view.setUint32(5, json.length);
  head.set(json, 9);
  return data.length > 0 ? [head, data] : [head];
}

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest accepted frame (type byte plus body). @default {MAX_FRAME_BYTES} */
  maxFrameBytes?: number;
}

/**
 * Incremental decoder: push bytes as they arrive, get whole frames back.
 * Each frame body is copied once into its own buffer, so returned data is safe to keep.
 */
export class FrameDecoder {
  #max: number;
  #header = new Uint8Array(4);
  #headerFill = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;

  /** Creates a decoder with the given limits. */
  constructor(options: FrameDecoderOptions = {}) {
    this.#max = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  /** The largest frame accepted from now on (e.g. raised once the peer has logged in). */
  get maxFrameBytes(): number {
    return this.#max;
  }
  set maxFrameBytes(bytes: number) {
    this.#max = bytes;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#body === null;
  }

  /**
   * The unfilled rest of the frame body being received, when at least `min` bytes of it are missing: a reader
   * may read straight into it and then call {@linkcode FrameDecoder.filled}, saving a copy of large bodies.
   */
  bodySpace(min: number): Uint8Array | null {
    if (this.#body === null || this.#body.length - this.#bodyFill < min) return null;
    return this.#body.subarray(this.#bodyFill);
  }

  /** Records that `n` bytes were read into {@linkcode FrameDecoder.bodySpace}; returns the frame if complete. */
  filled(n: number): Frame[] {
    this.#bodyFill += n;
    if (this.#body === null || this.#bodyFill < this.#body.length) return [];
    const body = this.#body;
    this.#body = null;
    return [decodeBody(body)];
  }

  /** Feeds bytes; returns the frames completed by them. Throws {@linkcode FrameError} on invalid input. */
  push(bytes: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < bytes.length) {
      if (this.#body === null) {
        const take = Math.min(4 - this.#headerFill, bytes.length - pos);
        this.#header.set(bytes.subarray(pos, pos + take), this.#headerFill);
        this.#headerFill += take;
        pos += take;
        if (this.#headerFill < 4) break;
        const length = new DataView(this.#header.buffer).getUint32(0);
        if (length < 1) throw new FrameError("Invalid frame: empty frame");
        if (length > this.#max) {
          throw new FrameError(`Invalid frame: ${length} bytes exceeds the limit of ${this.#max} bytes`);
        }
        this.#body = new Uint8Array(length);
        this.#bodyFill = 0;
        this.#headerFill = 0;
      }
      const take = Math.min(this.#body.length - this.#bodyFill, bytes.length - pos);
      this.#body.set(bytes.subarray(pos, pos + take), this.#bodyFill);
      this.#bodyFill += take;
      pos += take;
      if (this.#bodyFill === this.#body.length) {
        const body = this.#body;
        this.#body = null;
        frames.push(decodeBody(body));
      }
    }
    return frames;
  }
}

/**
 * Throws unless the JSON text nests arrays and objects at most {@linkcode MAX_JSON_DEPTH} deep: one pass over
 * the bytes before `JSON.parse`, which would otherwise build a deep structure at great cost in memory and time.
 */
function checkJsonDepth(bytes: Uint8Array): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x7b || b === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new FrameError(`Invalid frame: JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
      }
    } else if (b === 0x7d || b === 0x5d) {
      depth--;
    }
  }
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  checkJsonDepth(bytes);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new FrameError("Invalid frame: body is not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameError("Invalid frame: message is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function decodeBody(body: Uint8Array): Frame {
  const type = body[0];
  if (type === FRAME_JSON) return { message: parseJson(body.subarray(1)) };
  if (type === FRAME_DATA) {
    if (body.length < 5) throw new FrameError("Invalid frame: data frame too short");
    const jsonLength = new DataView(body.buffer, body.byteOffset + 1, 4).getUint32(0);
    if (jsonLength > body.length - 5) {
      throw new FrameError("Invalid frame: data frame header overruns the frame");
    }
    return {
      message: parseJson(body.subarray(5, 5 + jsonLength)),
      data: body.subarray(5 + jsonLength),
    };
  }
  throw new FrameError(`Invalid frame: unknown frame type ${type}`);
}
