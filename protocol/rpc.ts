// Request/reply and push messaging over one byte stream: ids, pipelining, limits, batched writes.
import { encodeFrameParts, type Frame, FrameDecoder, FrameError } from "./frame.ts";

/**
 * A byte connection: a TLS connection (Deno.TlsConn fits as it is), or an in-memory pipe in tests. Plain reads
 * and writes, not web streams: on this platform streams cost several times the bytes' own transfer.
 */
export interface Duplex {
  /** Reads into `p`; the number of bytes read, or null at the end. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`; the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
  /** Releases the connection at once; pending reads and writes fail. */
  close(): void;
}

/** The message of a thrown value, which need not be an Error (a stream may reject with undefined). */
function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A request waiting for its reply. */
interface Pending {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  op: string;
  body: Record<string, unknown>;
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
  /** Called once the reply has been written to the connection (or the connection closed). */
  onSent?: () => void;
}

/** Bytes of the reply budget held by one request (see {@linkcode RpcPeer.reserve}). */
export interface Reservation {
  /** Changes the bytes held (e.g. down to the real size once the reply is known). */
  resize(bytes: number): void;
  /** Gives the bytes back; further calls do nothing. */
  release(): void;
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
  /** Bytes of replies that may be prepared or waiting to be written at once (see `reserve`). @default 16 MiB */
  replyBudgetBytes?: number;
  /**
   * Checks each reply before the request resolves (`op` and `request` are what was asked) and returns it as it
   * should be used; a throw fails that request with {@linkcode RpcError} code "bad_reply" and the thrown message.
   */
  checkReply?: (op: string, request: Record<string, unknown>, reply: Frame) => Frame;
}

const COALESCE_LIMIT = 256 * 1024;
const SMALL_PART = 16 * 1024;
/** Queued outgoing bytes above which no new request is taken. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Bytes asked for per read. */
const READ_BUFFER_BYTES = 256 * 1024;
/** Frame bodies missing at least this much are read into place without a copy. */
const DIRECT_READ_BYTES = 16 * 1024;

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
  #pending = new Map<number, Pending>();
  #decoder: FrameDecoder;
  #budgetUsed = 0;
  #budgetWaiters: (() => void)[] = [];
  #sentCallbacks: { at: number; call: () => void }[] = [];
  #bytesQueued = 0;
  #bytesWritten = 0;
  #nextId = 1;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushing: Promise<void> | null = null;
  #inFlight = 0;
  #slotWaiters: (() => void)[] = [];
  #closedError: RpcError | null = null;
  #lastReceived = Date.now();
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  /** Resolves when the connection has closed, for whatever reason. */
  readonly closed: Promise<RpcError>;
  #resolveClosed!: (e: RpcError) => void;

  /** Wraps a duplex stream and starts reading from it. */
  constructor(duplex: Duplex, options: RpcOptions = {}) {
    this.#duplex = duplex;
    this.#options = options;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#decoder = new FrameDecoder({ maxFrameBytes: options.maxFrameBytes });
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

  /** The largest frame accepted from the other side; may be changed at any time (e.g. after login). */
  get maxFrameBytes(): number {
    return this.#decoder.maxFrameBytes;
  }
  set maxFrameBytes(bytes: number) {
    this.#decoder.maxFrameBytes = bytes;
  }

  /**
   * Waits until `bytes` fit in the reply budget and holds them: a handler whose reply may be large reserves
   * before it reads the data, so a peer that sends requests without reading the replies makes this side stop
   * reading requests instead of growing. A reservation larger than the budget waits until nothing else is held.
   */
  async reserve(bytes: number): Promise<Reservation> {
    const budget = this.#options.replyBudgetBytes ?? 16 * 1024 * 1024;
    while (this.#budgetUsed > 0 && this.#budgetUsed + bytes > budget && !this.#closedError) {
      await new Promise<void>((resolve) => this.#budgetWaiters.push(resolve));
    }
    let held = bytes;
    this.#budgetUsed += held;
    return {
      resize: (n) => {
        this.#budgetUsed += n - held;
        held = n;
        this.#wakeBudget();
      },
      release: () => {
        this.#budgetUsed -= held;
        held = 0;
        this.#wakeBudget();
      },
    };
  }

  #wakeBudget(): void {
    const waiters = this.#budgetWaiters;
    this.#budgetWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Sends a request and resolves with the reply frame; rejects with {@linkcode RpcError} on an error reply. */
  request(op: string, body: Record<string, unknown> = {}, data?: Uint8Array): Promise<Frame> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    const promise = new Promise<Frame>((resolve, reject) =>
      this.#pending.set(id, { resolve, reject, op, body })
    );
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
    this.#wakeBudget();
    // Send what is queued (an error push, a last reply) if the peer takes it soon; never wait on a peer that
    // stopped reading.
    const flushThenClose = async () => {
      await withDeadline(this.drain(), error.code === "closed" ? 2000 : 250).catch(() => {});
      try {
        this.#duplex.close();
      } catch { /* already closed */ }
    };
    flushThenClose().finally(() => {
      for (const { call } of this.#sentCallbacks.splice(0)) call();
      this.#resolveClosed(error);
    });
  }

  #send(message: Record<string, unknown>, data?: Uint8Array, onSent?: () => void): void {
    for (const part of encodeFrameParts(message, data)) {
      this.#queue.push(part);
      this.#queuedBytes += part.length;
      this.#bytesQueued += part.length;
      this.#options.onBytes?.("out", part.length);
    }
    if (onSent) {
      if (this.#closedError) onSent();
      else this.#sentCallbacks.push({ at: this.#bytesQueued, call: onSent });
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
        let written = 0;
        while (written < batch.length) written += await this.#duplex.write(batch.subarray(written));
        this.#bytesWritten += batch.length;
        while (this.#sentCallbacks.length > 0 && this.#sentCallbacks[0].at <= this.#bytesWritten) {
          this.#sentCallbacks.shift()!.call();
        }
      }
    } catch (error) {
      this.close(new RpcError("closed", `Connection lost: ${errorText(error)}`));
    } finally {
      this.#flushing = null;
    }
  }

  async #readLoop(): Promise<void> {
    const decoder = this.#decoder;
    // One buffer, reused: the decoder copies each frame's bytes out of it.
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (!this.#closedError) {
        // The rest of a large frame body is read straight into the frame's own buffer.
        const space = decoder.bodySpace(DIRECT_READ_BYTES);
        const n = await this.#duplex.read(space ?? buffer);
        if (n === null) break;
        this.#lastReceived = Date.now();
        this.#options.onBytes?.("in", n);
        for (const frame of space ? decoder.filled(n) : decoder.push(buffer.subarray(0, n))) {
          await this.#dispatch(frame);
          if (this.#closedError) break;
        }
      }
      this.close(new RpcError("closed", "Connection closed by peer"));
    } catch (error) {
      if (error instanceof FrameError) {
        this.push({ push: "error", code: "bad_frame", error: error.message });
        // Closing with unread bytes waiting makes TCP send a reset, which can destroy the error frame before
        // the peer reads it: send it, then read and drop what still comes for a moment before closing.
        await withDeadline(this.drain(), 250).catch(() => {});
        await withDeadline(this.#discard(buffer), 250).catch(() => {});
        this.close(new RpcError("bad_frame", error.message));
      } else {
        this.close(new RpcError("closed", `Connection lost: ${errorText(error)}`));
      }
    }
  }

  async #discard(buffer: Uint8Array): Promise<void> {
    try {
      while (!this.#closedError && await this.#duplex.read(buffer) !== null) { /* dropped */ }
    } catch { /* closed meanwhile */ }
  }

  /** Resolves or rejects the request that `frame` answers (after the reply check, if any). */
  #settle(frame: Frame, re: number): void {
    const waiter = this.#pending.get(re);
    if (!waiter) return;
    this.#pending.delete(re);
    const check = this.#options.checkReply;
    if (check) {
      try {
        frame = check(waiter.op, waiter.body, frame);
      } catch (error) {
        waiter.reject(new RpcError("bad_reply", errorText(error)));
        return;
      }
    }
    const message = frame.message;
    if (message.ok === false) {
      const { code, error, re: _re, ok: _ok, ...detail } = message;
      waiter.reject(new RpcError(String(code ?? "error"), String(error ?? "request failed"), detail));
    } else {
      waiter.resolve(frame);
    }
  }

  async #dispatch(frame: Frame): Promise<void> {
    const message = frame.message;
    if (typeof message.re === "number") return this.#settle(frame, message.re);
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
      if (this.#closedError) reply.onSent?.();
      else this.#send({ ...reply.body, re: id, ok: true }, reply.data, reply.onSent);
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

/** One end of an in-memory pipe; its web streams are exposed too, for tests that speak raw bytes. */
export class MemoryEnd implements Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #leftover: Uint8Array | null = null;

  /** Wraps the two streams of this end. */
  constructor(readable: ReadableStream<Uint8Array>, writable: WritableStream<Uint8Array>) {
    this.readable = readable;
    this.writable = writable;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (!this.#leftover) {
      this.#reader ??= this.readable.getReader();
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#leftover = value;
    }
    const n = Math.min(p.length, this.#leftover.length);
    p.set(this.#leftover.subarray(0, n));
    this.#leftover = n < this.#leftover.length ? this.#leftover.subarray(n) : null;
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    this.#writer ??= this.writable.getWriter();
    await this.#writer.write(p.slice());
    return p.length;
  }

  close(): void {
    this.#writer ??= this.writable.getWriter();
    this.#writer.close().catch(() => this.#writer?.abort().catch(() => {}));
    (this.#reader ? this.#reader.cancel() : this.readable.cancel()).catch(() => {});
  }
}

/** Two connected in-memory ends, for running client and server in one process. */
export function memoryPipe(): [MemoryEnd, MemoryEnd] {
  const a = new TransformStream<Uint8Array, Uint8Array>();
  const b = new TransformStream<Uint8Array, Uint8Array>();
  return [new MemoryEnd(a.readable, b.writable), new MemoryEnd(b.readable, a.writable)];
}
