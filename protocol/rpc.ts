// Request/reply and push messaging over one byte stream: ids, pipelining, limits, batched writes.
import { encodeFrameParts, type Frame, FrameDecoder, FrameError } from "./frame.ts";

/** Any pair of byte streams: a TLS connection, or an in-memory pipe in tests. */
export interface Duplex {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Releases the underlying connection at once (a TLS connection has it). */
  close?(): void;
}

/** Resolves with `promise`, or rejects once `ms` have passed. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error("deadline")), ms)
  );
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** An error reply from the other side, or a local failure of the connection. */
export class RpcError extends Error {
  override name = "RpcError";
  /** Machine-readable reason, e.g. "conflict", "auth", "closed", "bad_request". */
  code: string;
  /** Extra fields of the error reply. */
  detail: Record<string, unknown>;
  /** Creates an error with a code and a human-readable message. */
  constructor(code: string, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.detail = detail;
  }
}

/** What a request handler returns: the reply fields and optional bytes. */
export interface Reply {
  body?: Record<string, unknown>;
  data?: Uint8Array;
}

/** Options for {@linkcode RpcPeer}. */
export interface RpcOptions {
  /** Handles requests from the other side. Throw {@linkcode RpcError} for an error reply. */
  onRequest?: (frame: Frame) => Promise<Reply>;
  /** Receives pushed messages (no id). */
  onPush?: (frame: Frame) => void;
  /** Largest frame accepted. @default 16 MiB */
  maxFrameBytes?: number;
  /** Requests handled at once; reading pauses beyond this. @default 64 */
  maxInFlight?: number;
  /** Close the connection after this long without receiving anything. @default 0 (never) */
  idleTimeoutMs?: number;
  /** Counts bytes in and out, for statistics. */
  onBytes?: (direction: "in" | "out", count: number) => void;
}

const COALESCE_LIMIT = 256 * 1024;
const SMALL_PART = 16 * 1024;
/** Queued outgoing bytes above which no new request is taken. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;

/**
 * One end of a filesync connection. Requests carry an id and replies echo it as `re`, so many requests can be in
 * flight; messages without an id are pushes.
 *
 * @example
 * ```ts
 * const peer = new RpcPeer(conn, { onPush: (f) => console.log(f.message) });
 * const { message } = await peer.request("HELLO", { version: 1 });
 * ```
 */
export class RpcPeer {
  #duplex: Duplex;
  #options: RpcOptions;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, { resolve: (f: Frame) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushing: Promise<void> | null = null;
  #inFlight = 0;
  #slotWaiters: (() => void)[] = [];
  #closedError: RpcError | null = null;
  #lastReceived = Date.now();
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  /** Resolves when the connection has closed, for whatever reason. */
  readonly closed: Promise<RpcError>;
  #resolveClosed!: (e: RpcError) => void;

  /** Wraps a duplex stream and starts reading from it. */
  constructor(duplex: Duplex, options: RpcOptions = {}) {
    this.#duplex = duplex;
    this.#options = options;
    this.#writer = duplex.writable.getWriter();
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    if (options.idleTimeoutMs) {
      const every = Math.max(50, Math.floor(options.idleTimeoutMs / 4));
      this.#idleTimer = setInterval(() => {
        if (Date.now() - this.#lastReceived > options.idleTimeoutMs!) {
          this.close(new RpcError("timeout", "Connection idle for too long"));
        }
      }, every);
    }
    this.#readLoop();
  }

  /** True once the connection is closed. */
  get isClosed(): boolean {
    return this.#closedError !== null;
  }

  /** Sends a request and resolves with the reply frame; rejects with {@linkcode RpcError} on an error reply. */
  request(op: string, body: Record<string, unknown> = {}, data?: Uint8Array): Promise<Frame> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    const promise = new Promise<Frame>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    this.#send({ ...body, id, op }, data);
    return promise;
  }

  /** Sends a message that expects no reply. */
  push(body: Record<string, unknown>, data?: Uint8Array): void {
    if (this.#closedError) return;
    this.#send(body, data);
  }

  /** Waits until everything queued so far has been handed to the stream. */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  /** Closes the connection; pending requests reject with the given error. */
  close(error: RpcError = new RpcError("closed", "Connection closed")): void {
    if (this.#closedError) return;
    this.#closedError = error;
    clearInterval(this.#idleTimer);
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    for (const wake of this.#slotWaiters) wake();
    this.#slotWaiters = [];
    // Send what is queued (an error push, a last reply) if the peer takes it soon; never wait on a peer that
    // stopped reading.
    const flushThenClose = async () => {
      try {
        await withDeadline(this.drain(), error.code === "closed" ? 2000 : 250);
        await withDeadline(this.#writer.close(), 250);
      } catch {
        // Not awaited: an abort waits for a write in progress, which a peer that stopped reading never finishes.
        this.#writer.abort().catch(() => {});
      }
      // Stop reading: through the read loop's reader while it holds the lock, else on the stream itself.
      await (this.#reader?.cancel() ?? Promise.reject()).catch(() => this.#duplex.readable.cancel()).catch(
        () => {},
      );
      try {
        this.#duplex.close?.();
      } catch { /* already closed */ }
    };
    flushThenClose().finally(() => this.#resolveClosed(error));
  }

  #send(message: Record<string, unknown>, data?: Uint8Array): void {
    for (const part of encodeFrameParts(message, data)) {
      this.#queue.push(part);
      this.#queuedBytes += part.length;
      this.#options.onBytes?.("out", part.length);
    }
    if (!this.#flushing) this.#flushing = this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      // Let callers queue more frames in the same tick, then write them in as few writes as possible.
      await Promise.resolve();
      while (this.#queue.length > 0) {
        let batch: Uint8Array;
        if (this.#queue.length === 1 || this.#queue[0].length >= SMALL_PART) {
          batch = this.#queue.shift()!;
        } else {
          // Copy runs of small parts (headers, JSON messages) into one write; large parts go out as they are.
          let size = 0;
          let count = 0;
          while (
            count < this.#queue.length && this.#queue[count].length < SMALL_PART &&
            size + this.#queue[count].length <= COALESCE_LIMIT
          ) {
            size += this.#queue[count].length;
            count++;
          }
          if (count <= 1) {
            batch = this.#queue.shift()!;
          } else {
            batch = new Uint8Array(size);
            let offset = 0;
            for (const part of this.#queue.splice(0, count)) {
              batch.set(part, offset);
              offset += part.length;
            }
          }
        }
        this.#queuedBytes -= batch.length;
        await this.#writer.write(batch);
      }
    } catch (error) {
      this.close(new RpcError("closed", `Connection lost: ${(error as Error).message}`));
    } finally {
      this.#flushing = null;
    }
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder({ maxFrameBytes: this.#options.maxFrameBytes });
    const reader = this.#duplex.readable.getReader();
    this.#reader = reader;
    try {
      while (!this.#closedError) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#lastReceived = Date.now();
        this.#options.onBytes?.("in", value.length);
        for (const frame of decoder.push(value)) {
          await this.#dispatch(frame);
          if (this.#closedError) break;
        }
      }
      this.close(new RpcError("closed", "Connection closed by peer"));
    } catch (error) {
      if (error instanceof FrameError) {
        this.push({ push: "error", code: "bad_frame", error: error.message });
        this.close(new RpcError("bad_frame", error.message));
      } else {
        this.close(new RpcError("closed", `Connection lost: ${(error as Error).message}`));
      }
    } finally {
      reader.releaseLock();
    }
  }

  async #dispatch(frame: Frame): Promise<void> {
    const message = frame.message;
    if (typeof message.re === "number") {
      const waiter = this.#pending.get(message.re);
      if (!waiter) return;
      this.#pending.delete(message.re);
      if (message.ok === false) {
        const { code, error, re: _re, ok: _ok, ...detail } = message;
        waiter.reject(new RpcError(String(code ?? "error"), String(error ?? "request failed"), detail));
      } else {
        waiter.resolve(frame);
      }
      return;
    }
    if (typeof message.id === "number" && typeof message.op === "string") {
      // Backpressure: take no new request while replies wait to be sent, or while too many are being handled.
      while (this.#queuedBytes > HIGH_WATER_BYTES && !this.#closedError) await this.drain();
      const maxInFlight = this.#options.maxInFlight ?? 64;
      while (this.#inFlight >= maxInFlight && !this.#closedError) {
        await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
      }
      this.#inFlight++;
      this.#handle(frame, message.id).finally(() => {
        this.#inFlight--;
        this.#slotWaiters.shift()?.();
      });
      return;
    }
    if (typeof message.push === "string") {
      this.#options.onPush?.(frame);
      return;
    }
    this.push({ push: "error", code: "bad_request", error: "Message has neither id and op, re, nor push" });
  }

  async #handle(frame: Frame, id: number): Promise<void> {
    const handler = this.#options.onRequest;
    try {
      if (!handler) throw new RpcError("bad_request", "This side accepts no requests");
      const reply = await handler(frame);
      this.push({ ...reply.body, re: id, ok: true }, reply.data);
    } catch (error) {
      if (error instanceof RpcError) {
        this.push({ ...error.detail, re: id, ok: false, code: error.code, error: error.message });
      } else {
        this.push({ re: id, ok: false, code: "internal", error: "Internal server error" });
        console.error(`internal error handling ${String(frame.message.op)}:`, error);
      }
    }
  }
}

/** Two connected in-memory duplex streams, for running client and server in one process. */
export function memoryPipe(): [Duplex, Duplex] {
  const a = new TransformStream<Uint8Array, Uint8Array>();
  const b = new TransformStream<Uint8Array, Uint8Array>();
  return [
    { readable: a.readable, writable: b.writable },
    { readable: b.readable, writable: a.writable },
  ];
}
