// Tests for bench/syncthing.ts's config builder (pure: no syncthing binary needed).
import assert from "node:assert/strict";
import { escapeXml, SYNCTHING_FOLDER, syncthingConfigXml } from "./syncthing.ts";

const A = { id: "AAAAAAA-AAAAAAA", name: "A", address: "tcp://127.0.0.1:40001" };
const B = { id: "BBBBBBB-BBBBBBB", name: "B", address: "tcp://127.0.0.1:40002" };

function configOfA(folderPath = "/dev/shm/x/A"): string {
  return syncthingConfigXml({ self: A, peer: B, guiAddress: "127.0.0.1:40003", apiKey: "key1", folderPath });
}

function element(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, "g"))].map((m) => m[1]);
}

Deno.test("syncthingConfigXml() keeps the instance on loopback with every outside service off", () => {
  const xml = configOfA();
  assert.deepEqual(element(xml, "listenAddress"), [A.address]);
  for (const off of ["globalAnnounceEnabled", "localAnnounceEnabled", "relaysEnabled", "natEnabled"]) {
    assert.deepEqual(element(xml, off), ["false"], off);
  }
  assert.deepEqual(element(xml, "startBrowser"), ["false"]);
  assert.deepEqual(element(xml, "urAccepted"), ["-1"], "usage reporting declined");
  assert.deepEqual(element(xml, "crashReportingEnabled"), ["false"]);
  assert.deepEqual(element(xml, "autoUpgradeIntervalH"), ["0"]);
  assert.deepEqual(element(xml, "setLowPriority"), ["false"], "same CPU priority as filesync");
  assert.deepEqual(element(xml, "address"), [A.address, B.address, "127.0.0.1:40003"]);
  assert.deepEqual(element(xml, "apikey"), ["key1"]);
});

Deno.test("syncthingConfigXml() shares one folder with both devices, watcher off, rescans rare", () => {
  const xml = configOfA();
  const folder = /<folder ([^>]*)>([\s\S]*?)<\/folder>/.exec(xml);
  assert.ok(folder, "one folder element");
  assert.match(folder[1], new RegExp(`id="${SYNCTHING_FOLDER}"`));
  assert.match(folder[1], /path="\/dev\/shm\/x\/A"/);
  assert.match(folder[1], /fsWatcherEnabled="false"/);
  assert.match(folder[1], /rescanIntervalS="86400"/);
  assert.match(folder[1], /type="sendreceive"/);
  assert.deepEqual([...folder[2].matchAll(/<device id="([^"]+)"/g)].map((m) => m[1]), [A.id, B.id]);
  assert.equal((xml.match(/<folder /g) ?? []).length, 1);
});

Deno.test("syncthingConfigXml() escapes paths", () => {
  const xml = configOfA(`/tmp/a&b"<c>`);
  assert.match(xml, /path="\/tmp\/a&amp;b&quot;&lt;c&gt;"/);
  assert.equal(escapeXml(`'&'`), "&apos;&amp;&apos;");
});
