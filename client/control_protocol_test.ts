// Tests for the control socket's request parsing and line splitting.
import assert from "node:assert/strict";
import {
  ControlRequestError,
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseControlRequest,
} from "./control_protocol.ts";

Deno.test("parseControlRequest() takes every known request", () => {
  for (const op of ["status", "follow", "pause", "resume", "mounts"]) {
    assert.deepEqual(parseControlRequest(JSON.stringify({ op, extra: 1 })), { op });
  }
  assert.deepEqual(parseControlRequest('{"op":"rpc","request":"LOCK","body":{"path":"a"}}'), {
    op: "rpc",
    request: "LOCK",
    body: { path: "a" },
  });
  assert.deepEqual(parseControlRequest('{"op":"rpc","request":"LOCKS"}'), {
    op: "rpc",
    request: "LOCKS",
    body: {},
  });
});

Deno.test("parseControlRequest() refuses what is not a known request, with a reason", () => {
  const cases: [string, RegExp][] = [
    ["", /not JSON/],
    ["{", /not JSON/],
    ["[1,2]", /not a JSON object/],
    ["null", /not a JSON object/],
    ['"status"', /not a JSON object/],
    ["{}", /unknown request null/],
    ['{"op":"STATUS"}', /unknown request "STATUS"/],
    ['{"op":5}', /unknown request 5/],
    ['{"op":"rpc"}', /cannot forward null/],
    ['{"op":"rpc","request":"MONITOR"}', /cannot forward "MONITOR"/],
    ['{"op":"rpc","request":"AUTH","body":{}}', /cannot forward "AUTH"/],
    ['{"op":"rpc","request":"LOCK","body":[1]}', /body is not a JSON object/],
    ['{"op":"rpc","request":"LOCK","body":"x"}', /body is not a JSON object/],
    [JSON.stringify({ op: "status", pad: "x".repeat(MAX_REQUEST_BYTES) }), /too large/],
  ];
  for (const [line, reason] of cases) {
    assert.throws(
      () => parseControlRequest(line),
      (e: Error) => e instanceof ControlRequestError && reason.test(e.message),
      line.slice(0, 60),
    );
  }
});

Deno.test("LineSplitter joins lines across reads, also inside a UTF-8 character", () => {
  const split = new LineSplitter(100);
  const bytes = new TextEncoder().encode('{"a":"€"}\n{"b":1}\n{"c"');
  assert.deepEqual(split.push(bytes.subarray(0, 7)), []);
  assert.deepEqual(split.push(bytes.subarray(7)), ['{"a":"€"}', '{"b":1}']);
  assert.deepEqual(split.push(new TextEncoder().encode(":2}\n")), ['{"c":2}']);
});

Deno.test("LineSplitter throws once a line is longer than the limit", () => {
  const split = new LineSplitter(10);
  assert.deepEqual(split.push(new TextEncoder().encode("short\n12345")), ["short"]);
  assert.throws(() => split.push(new TextEncoder().encode("678901")), RangeError);
  assert.throws(() => new LineSplitter(4).push(new TextEncoder().encode("12345\n")), RangeError);
});
