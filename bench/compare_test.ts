// Tests for bench/compare.ts: the speed ratio against Syncthing and the verdicts against issue #9's targets.
import assert from "node:assert/strict";
import {
  cpuPerGiB,
  EDIT_HOP_LIMIT,
  type Figures,
  formatRatio,
  judge,
  speedRatio,
  TARGETS,
} from "./compare.ts";

const GIB = 1024 ** 3;

Deno.test("speedRatio() is Syncthing's time over filesync's, null without both", () => {
  const cases: [number | null, number | null | undefined, number | null][] = [
    [2, 4, 2],
    [4, 2, 0.5],
    [1, 1, 1],
    [null, 3, null],
    [3, null, null],
    [3, undefined, null],
    [0, 3, null],
    [3, 0, null],
    [NaN, 3, null],
  ];
  for (const [filesync, syncthing, expected] of cases) {
    assert.equal(speedRatio(filesync, syncthing), expected, `${filesync} vs ${syncthing}`);
  }
});

Deno.test("formatRatio() shows two decimals below 10×, one above, a dash for none", () => {
  assert.equal(formatRatio(0.456), "0.46×");
  assert.equal(formatRatio(2), "2.00×");
  assert.equal(formatRatio(12.34), "12.3×");
  assert.equal(formatRatio(null), "—");
});

Deno.test("cpuPerGiB() divides CPU seconds by GiB of content", () => {
  assert.equal(cpuPerGiB({ seconds: 1, bytes: 2 * GIB, cpuSeconds: 10 }), 5);
  assert.equal(cpuPerGiB({ seconds: 1, bytes: 0, cpuSeconds: 10 }), null);
  assert.equal(cpuPerGiB({ seconds: 1, bytes: GIB }), null);
  assert.equal(cpuPerGiB({ seconds: 1, bytes: GIB, cpuSeconds: NaN }), null);
});

Deno.test("judge() applies each scenario's targets from issue #9", () => {
  const cases: { name: string; figures: Figures; verdict: "pass" | "miss" | "—"; reason?: RegExp }[] = [
    {
      name: "large",
      figures: { seconds: 4, syncthingSeconds: 4, bytes: GIB, cpuSeconds: 8 },
      verdict: "pass",
    },
    {
      name: "large",
      figures: { seconds: 5, syncthingSeconds: 4, bytes: GIB, cpuSeconds: 8 },
      verdict: "miss",
      reason: /0\.80× Syncthing's speed/,
    },
    {
      name: "large",
      figures: { seconds: 3, syncthingSeconds: 4, bytes: GIB, cpuSeconds: 9 },
      verdict: "miss",
      reason: /9\.0 CPU-s\/GiB/,
    },
    {
      name: "mixed",
      figures: { seconds: 3, syncthingSeconds: null, bytes: GIB, cpuSeconds: 4 },
      verdict: "—",
      reason: /no Syncthing figure/,
    },
    {
      name: "mixed",
      figures: { seconds: 3, syncthingSeconds: null, bytes: GIB, cpuSeconds: 20 },
      verdict: "miss",
      reason: /20\.0 CPU-s\/GiB/,
    },
    { name: "small", figures: { seconds: 2, syncthingSeconds: 4 }, verdict: "pass" },
    { name: "small", figures: { seconds: 2.1, syncthingSeconds: 4 }, verdict: "miss", reason: /1\.90×/ },
    { name: "edit", figures: { seconds: 0.499, hopBytes: EDIT_HOP_LIMIT }, verdict: "pass" },
    { name: "edit", figures: { seconds: 0.5, hopBytes: 1000 }, verdict: "miss", reason: /500 ms/ },
    {
      name: "insert",
      figures: { seconds: 0.2, hopBytes: EDIT_HOP_LIMIT + 1 },
      verdict: "miss",
      reason: /bytes/,
    },
    { name: "insert", figures: { seconds: null, hopBytes: 1 }, verdict: "—", reason: /no time/ },
    { name: "rename", figures: { seconds: 0.29, hopBytes: 0 }, verdict: "pass" },
    { name: "rename", figures: { seconds: 0.31, hopBytes: 0 }, verdict: "miss" },
    { name: "rename", figures: { seconds: 0.1, hopBytes: 64 * 1024 }, verdict: "miss" },
    { name: "saveall", figures: { seconds: 0.19 }, verdict: "pass" },
    { name: "saveall-touch", figures: { seconds: 1.24 }, verdict: "miss", reason: /1240 ms/ },
    { name: "memory", figures: { seconds: 40, peakRssBytes: 149e6 }, verdict: "pass" },
    { name: "memory", figures: { seconds: 40, peakRssBytes: 150e6 }, verdict: "miss", reason: /150 MB/ },
    { name: "rescan", figures: { seconds: 0.5, peakRssBytes: 200e6 }, verdict: "pass" },
    { name: "rescan", figures: { seconds: 0.5, peakRssBytes: 800e6 }, verdict: "miss", reason: /800 MB/ },
    { name: "rescan", figures: { seconds: 1.8, peakRssBytes: 200e6 }, verdict: "miss", reason: /1800 ms/ },
    { name: "latency", figures: { seconds: 0.05 }, verdict: "pass" },
    { name: "latency", figures: { seconds: 0.1 }, verdict: "miss" },
  ];
  for (const { name, figures, verdict, reason } of cases) {
    const got = judge(TARGETS[name], figures);
    assert.equal(got.verdict, verdict, `${name} ${JSON.stringify(figures)}: ${got.reasons.join("; ")}`);
    if (reason) assert.match(got.reasons.join("; "), reason, name);
    if (verdict === "pass") assert.deepEqual(got.reasons, []);
  }
});
