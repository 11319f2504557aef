// Tests for RpcPeer over in-memory pipes: replies, pipelining, errors, pushes, limits and closing.

import assert from "node:assert/strict";
import { encodeFrame, type Frame, FrameDecoder } from "./frame.ts";
import { type MemoryEnd, memoryPipe, type Reply, RpcError, type RpcOptions, RpcPeer } from "./rpc.ts";

/** A promise with its resolve function outside. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Two connected peers; closes both (and waits for them) on dispose. */
function peers(
  client: RpcOptions,
  server: RpcOptions,
): { client: RpcPeer; server: RpcPeer } & AsyncDisposable {
  const [a, b] = memoryPipe();
  const pair = { client: new RpcPeer(a, client), server: new RpcPeer(b, server) };
  return {
    ...pair,
    async [Symbol.asyncDispose]() {
      pair.client.close();
      pair.server.close();
      await Promise.all([pair.client.closed, pair.server.closed]);
    },
  };
}

/**
 * The raw end of a pipe: reads (and decodes) everything the peer writes as soon as it is written, so the peer
 * never waits on us, and offers a writer for sending hand-made bytes.
 */
function rawEnd(duplex: MemoryEnd): { next(): Promise<Frame | null>; writer: WritableStreamDefaultWriter } {
  const reader = duplex.readable.getReader();
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let ended = false;
  let wake = deferred();
  (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      frames.push(...decoder.push(value));
      wake.resolve();
    }
    ended = true;
    wake.resolve();
  })();
  return {
    writer: duplex.writable.getWriter(),
    async next() {
      while (frames.length === 0 && !ended) {
        await wake.promise;
        wake = deferred();
      }
      return frames.shift() ?? null;
    },
  };
}

/** Asserts that `promise` rejects with an RpcError of `code`, and returns that error. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<RpcError> {
  let caught: unknown;
  await promise.then(() => assert.fail(`expected rejection with code "${code}"`), (e) => caught = e);
  assert.ok(caught instanceof RpcError, `expected RpcError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

const echo = (frame: Frame): Promise<Reply> =>
  Promise.resolve({ body: { echo: frame.message.value, op: frame.message.op }, data: frame.data });

Deno.test("a request resolves with the handler's reply, echoing the request id as re", async () => {
  await using pair = peers({}, { onRequest: echo });
  const reply = await pair.client.request("ECHO", { value: "héllo" });
  assert.deepEqual(reply.message, { echo: "héllo", op: "ECHO", re: 1, ok: true });
  assert.equal(reply.data, undefined);
});

Deno.test("request and reply data travel as bytes in both directions", async () => {
  await using pair = peers({}, { onRequest: echo });
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  const reply = await pair.client.request("PUT", { value: 1 }, bytes);
  assert.deepEqual(reply.data, bytes);
  const empty = await pair.client.request("PUT", { value: 2 }, new Uint8Array());
  assert.deepEqual(empty.data, new Uint8Array());
});

Deno.test("many requests in flight each get their own reply when the handler answers in reverse order", async () => {
  const gates: { value: number; release: () => void }[] = [];
  const allArrived = deferred();
  const count = 50;
  await using pair = peers({}, {
    onRequest: async (frame) => {
      const gate = deferred();
      gates.push({ value: frame.message.value as number, release: () => gate.resolve() });
      if (gates.length === count) allArrived.resolve();
      await gate.promise;
      return { body: { double: (frame.message.value as number) * 2 } };
    },
  });
  const replies = Array.from({ length: count }, (_, i) => pair.client.request("DOUBLE", { value: i }));
  await allArrived.promise;
  for (const gate of gates.reverse()) gate.release();
  const results = await Promise.all(replies);
  assert.deepEqual(results.map((r) => r.message.double), Array.from({ length: count }, (_, i) => i * 2));
});

Deno.test("large pipelined requests over the coalescing limit all arrive intact", async () => {
  await using pair = peers({}, { onRequest: echo });
  const blobs = Array.from({ length: 6 }, (_, i) => new Uint8Array(300 * 1024 + i).fill(i + 1));
  const small = Array.from({ length: 20 }, (_, i) => pair.client.request("SMALL", { value: i }));
  const big = blobs.map((blob, i) => pair.client.request("BIG", { value: i }, blob));
  const replies = await Promise.all([...small, ...big]);
  assert.deepEqual(replies.slice(0, 20).map((r) => r.message.echo), Array.from({ length: 20 }, (_, i) => i));
  replies.slice(20).forEach((reply, i) => assert.deepEqual(reply.data, blobs[i]));
});

Deno.test("an RpcError thrown by the handler rejects the request with its code, message and detail", async () => {
  await using pair = peers({}, {
    onRequest: () => {
      throw new RpcError("conflict", "changed on the server", { latest: 12, current: { rev: 3 } });
    },
  });
  const error = await rejectsWith(pair.client.request("COMMIT"), "conflict");
  assert.equal(error.message, "changed on the server");
  assert.deepEqual(error.detail, { latest: 12, current: { rev: 3 } });
  // The connection stays usable after an error reply.
  await rejectsWith(pair.client.request("COMMIT"), "conflict");
});

Deno.test("a handler that throws a plain Error yields code internal without leaking its message", async () => {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    await using pair = peers({}, {
      onRequest: () => Promise.reject(new Error("secret database path /var/db/x")),
    });
    const error = await rejectsWith(pair.client.request("GET"), "internal");
    assert.doesNotMatch(error.message, /secret|\/var\/db/);
    assert.doesNotMatch(JSON.stringify(error.detail), /secret|\/var\/db/);
    assert.equal(logged.length, 1, "the real error is logged on the serving side");
  } finally {
    console.error = original;
  }
});

Deno.test("a request to a side without a handler is refused with bad_request", async () => {
  await using pair = peers({}, {});
  await rejectsWith(pair.client.request("HELLO"), "bad_request");
});

Deno.test("pushes reach onPush with their data, in order, and requests still work between them", async () => {
  const received: Frame[] = [];
  const three = deferred();
  await using pair = peers({
    onPush: (frame) => {
      received.push(frame);
      if (received.length === 3) three.resolve();
    },
  }, { onRequest: echo });
  pair.server.push({ push: "events", n: 1 });
  pair.server.push({ push: "events", n: 2 }, new Uint8Array([9, 8, 7]));
  await pair.client.request("PING", { value: 0 });
  pair.server.push({ push: "events", n: 3 });
  await three.promise;
  assert.deepEqual(received.map((f) => f.message), [
    { push: "events", n: 1 },
    { push: "events", n: 2 },
    { push: "events", n: 3 },
  ]);
  assert.deepEqual(received[1].data, new Uint8Array([9, 8, 7]));
});

Deno.test("maxInFlight bounds the requests a handler sees at once", async () => {
  const limit = 3;
  const total = 12;
  let active = 0;
  let maxActive = 0;
  const waiting: (() => void)[] = [];
  let wake = deferred();
  await using pair = peers({}, {
    maxInFlight: limit,
    onRequest: async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      const gate = deferred();
      waiting.push(() => gate.resolve());
      wake.resolve();
      await gate.promise;
      active--;
      return {};
    },
  });
  const replies = Array.from({ length: total }, (_, i) => pair.client.request("WORK", { value: i }));
  // Release one handler at a time, and only once `limit` of them are blocked.
  for (let released = 0; released < total; released++) {
    while (waiting.length < Math.min(limit, total - released)) {
      await wake.promise;
      wake = deferred();
    }
    assert.ok(active <= limit, `${active} handlers ran at once, limit ${limit}`);
    waiting.shift()!();
  }
  await Promise.all(replies);
  assert.equal(maxActive, limit);
});

Deno.test("closing rejects pending requests with code closed, and later requests at once", async () => {
  const arrived = deferred();
  await using pair = peers({}, {
    onRequest: () => {
      arrived.resolve();
      return new Promise<Reply>(() => {});
    },
  });
  const pending = pair.client.request("SLOW");
  await arrived.promise;
  pair.client.close();
  await rejectsWith(pending, "closed");
  await rejectsWith(pair.client.request("AFTER"), "closed");
  assert.equal(pair.client.isClosed, true);
  assert.equal((await pair.client.closed).code, "closed");
  // The other side sees the stream end and closes too.
  assert.equal((await pair.server.closed).code, "closed");
  assert.equal(pair.server.isClosed, true);
});

Deno.test("frames queued just before close are still delivered", async () => {
  const got = deferred<Frame>();
  await using pair = peers({ onPush: (frame) => got.resolve(frame) }, {});
  pair.server.push({ push: "error", code: "timeout", error: "Login took too long" });
  pair.server.close();
  assert.equal((await got.promise).message.code, "timeout");
});

Deno.test("a malformed frame from the peer closes the connection with bad_frame and tells the peer why", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local, { onRequest: echo });
  const raw = rawEnd(remote);
  const pending = rejectsWith(peer.request("PING"), "bad_frame");
  assert.equal((await raw.next())?.message.op, "PING");
  await raw.writer.write(new Uint8Array([0, 0, 0, 2, 99, 0]));
  const reason = await peer.closed;
  assert.equal(reason.code, "bad_frame");
  assert.match(reason.message, /unknown frame type 99/);
  await pending;
  const notice = await raw.next();
  assert.deepEqual({ push: notice?.message.push, code: notice?.message.code }, {
    push: "error",
    code: "bad_frame",
  });
  assert.equal(await raw.next(), null, "the peer closed its side after the notice");
  await assert.rejects(raw.writer.write(encodeFrame({ push: "late" })), "the peer stopped reading");
});

Deno.test("an oversized frame header closes the connection with bad_frame before any body arrives", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local, { maxFrameBytes: 1024 });
  const raw = rawEnd(remote);
  await raw.writer.write(new Uint8Array([0, 0, 4, 1]));
  const reason = await peer.closed;
  assert.equal(reason.code, "bad_frame");
  assert.match(reason.message, /1025 bytes exceeds the limit of 1024/);
  assert.equal((await raw.next())?.message.code, "bad_frame");
});

Deno.test("a message with neither id and op, re, nor push gets a bad_request push and the connection lives on", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local, { onRequest: echo });
  const raw = rawEnd(remote);
  await raw.writer.write(encodeFrame({ hello: 1 }));
  const notice = await raw.next();
  assert.equal(notice?.message.code, "bad_request");
  await raw.writer.write(encodeFrame({ id: 5, op: "ECHO", value: "still here" }));
  assert.deepEqual((await raw.next())?.message, { echo: "still here", op: "ECHO", re: 5, ok: true });
  // A reply to an id nobody asked for is ignored.
  await raw.writer.write(encodeFrame({ re: 999, ok: true }));
  await raw.writer.write(encodeFrame({ id: 6, op: "ECHO", value: 2 }));
  assert.equal((await raw.next())?.message.re, 6);
  assert.equal(peer.isClosed, false);
  peer.close();
  await peer.closed;
  await raw.writer.close().catch(() => {}); // the peer may have stopped reading already
});

Deno.test("a connection silent for longer than idleTimeoutMs closes with code timeout", async () => {
  const [local, remote] = memoryPipe();
  const started = Date.now();
  const peer = new RpcPeer(local, { idleTimeoutMs: 150 });
  const raw = rawEnd(remote);
  const pending = rejectsWith(peer.request("PING"), "timeout");
  const reason = await peer.closed;
  const elapsed = Date.now() - started;
  assert.equal(reason.code, "timeout");
  assert.ok(elapsed >= 150, `closed after ${elapsed} ms, before the timeout`);
  assert.ok(elapsed < 2000, `closed only after ${elapsed} ms`);
  await pending;
  await raw.writer.close().catch(() => {}); // the peer may have stopped reading already
});

Deno.test("incoming traffic keeps a connection with an idle timeout open", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local, { idleTimeoutMs: 200 });
  const raw = rawEnd(remote);
  try {
    // Three times the timeout, with a frame every 20 ms.
    const until = Date.now() + 600;
    while (Date.now() < until) {
      await raw.writer.write(encodeFrame({ push: "keepalive" }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(peer.isClosed, false, "closed although frames kept arriving");
    }
  } finally {
    peer.close();
    await peer.closed;
    await raw.writer.close().catch(() => {}); // the peer may have stopped reading already
  }
});

Deno.test("a peer whose stream ends closes with code closed", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local);
  const raw = rawEnd(remote);
  const pending = rejectsWith(peer.request("PING"), "closed");
  await raw.writer.close().catch(() => {}); // the peer may have stopped reading already
  assert.equal((await peer.closed).code, "closed");
  await pending;
});

/** Resolves with true once `condition()` holds, or with false after `ms` (polling every 10 ms). */
async function eventually(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

Deno.test("the idle timeout closes a connection whose peer has stopped reading", async () => {
  const [local, remote] = memoryPipe();
  const peer = new RpcPeer(local, { idleTimeoutMs: 150 });
  try {
    // The peer neither sends nor reads, so this push can never be written (like a full socket buffer).
    peer.push({ push: "events" }, new Uint8Array(1024 * 1024));
    let reason: RpcError | null = null;
    peer.closed.then((r) => reason = r);
    assert.ok(
      await eventually(() => reason !== null, 1500),
      "closed never resolved: close() waits for the writes",
    );
    assert.equal(reason!.code, "timeout");
  } finally {
    await remote.readable.cancel();
    await peer.closed;
  }
});

Deno.test("a peer that sends requests but never reads cannot make the other side queue replies without bound", async () => {
  const [local, remote] = memoryPipe();
  const reply = new Uint8Array(1024 * 1024);
  let handled = 0;
  let queuedOut = 0;
  const peer = new RpcPeer(local, {
    maxInFlight: 4,
    onRequest: () => {
      handled++;
      return Promise.resolve({ data: reply });
    },
    onBytes: (direction, count) => direction === "out" && (queuedOut += count),
  });
  const writer = remote.writable.getWriter();
  try {
    const requests: Uint8Array[] = [];
    for (let id = 1; id <= 64; id++) requests.push(encodeFrame({ id, op: "GET" }));
    writer.write(new Uint8Array(requests.flatMap((r) => [...r])));
    // Without backpressure all 64 replies (64 MiB) pile up in memory; with it, reading stops well before.
    await eventually(() => handled === 64, 1000);
    assert.ok(
      queuedOut <= 24 * 1024 * 1024,
      `${handled} requests handled, ${
        (queuedOut / 1048576).toFixed(0)
      } MiB of replies queued for a peer that reads nothing`,
    );
  } finally {
    await remote.readable.cancel();
    peer.close();
    await peer.closed;
    writer.releaseLock();
  }
});

Deno.test("reserve() holds reply bytes until they are written, so a peer that does not read stops being served", async () => {
  const [a, b] = memoryPipe();
  let started = 0;
  const server = new RpcPeer(b, {
    replyBudgetBytes: 1000,
    onRequest: async () => {
      const reservation = await server.reserve(600);
      started++;
      return { data: new Uint8Array(600), onSent: () => reservation.release() };
    },
  });
  try {
    const writer = a.writable.getWriter();
    const requests = Array.from({ length: 10 }, (_, i) => encodeFrame({ id: i + 1, op: "GET" }));
    writer.write(requests.reduce((all, r) => new Uint8Array([...all, ...r]), new Uint8Array()));
    // Nobody reads the replies: at most the budget's worth is prepared.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(started <= 2, `${started} replies were prepared for a peer that reads none`);
    // Once the peer reads, every request is answered.
    const decoder = new FrameDecoder();
    const reader = a.readable.getReader();
    const replies: Frame[] = [];
    while (replies.length < 10) {
      const { value, done } = await reader.read();
      if (done) break;
      replies.push(...decoder.push(value));
    }
    assert.deepEqual(replies.map((f) => f.message.re), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(started, 10);
    reader.releaseLock();
    writer.releaseLock();
  } finally {
    server.close();
    a.close();
    await server.closed;
  }
});

Deno.test("a stream that fails with a non-Error value closes the peer cleanly (found by the fuzz)", async () => {
  // A web stream cancelled by the other side rejects writes with `undefined`.
  const duplex = {
    read: () => new Promise<number | null>(() => {}),
    write: () => Promise.reject(undefined),
    close: () => {},
  };
  const peer = new RpcPeer(duplex);
  const failed = await peer.request("PING").then(() => null, (error) => error);
  assert.ok(failed instanceof RpcError, `rejected with ${failed}`);
  assert.equal(failed.code, "closed");
  assert.match(failed.message, /Connection lost: undefined/);
  await peer.closed;
});
