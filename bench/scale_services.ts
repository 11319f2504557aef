// PostgreSQL and S3 (radosgw) for the bench's scale-out scenario: the ones FILESYNC_TEST_POSTGRES and
// FILESYNC_TEST_S3 name, else started through tests/services/*.sh on first use and stopped by stopScaleServices().
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { connectPostgres, parsePostgresUrl } from "../server/pg_connect.ts";
import { type TestS3, testS3 } from "../tests/services/s3_env.ts";

const SERVICES = new URL("../tests/services/", import.meta.url).pathname;

/** The services of one bench run: a PostgreSQL server URL where databases may be made, and an S3 bucket. */
export interface ScaleServices {
  postgres: string;
  s3: TestS3;
  /** How they were found or started, for the report. */
  notes: string[];
}

/** What the bench started itself (stopped at the end). */
const started: { postgresDir?: string; radosgwDir?: string } = {};
let services: Promise<ScaleServices | string> | null = null;

async function script(
  name: string,
  args: string[],
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("bash", {
      args: [join(SERVICES, name), ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    return { ok: false, stdout: "", stderr: `cannot run bash: ${(error as Error).message}` };
  }
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { ok: out.success, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

async function bringUp(): Promise<ScaleServices | string> {
  const notes: string[] = [];
  let postgres = Deno.env.get("FILESYNC_TEST_POSTGRES") || "";
  if (postgres) notes.push("PostgreSQL from FILESYNC_TEST_POSTGRES");
  else {
    const t0 = performance.now();
    const dir = await Deno.makeTempDir({ prefix: "filesync-bench-pg-" });
    const up = await script("postgres.sh", ["up", dir]);
    if (!up.ok) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return `no PostgreSQL (tests/services/postgres.sh: ${lastLine(up.stderr)})`;
    }
    started.postgresDir = dir;
    postgres = /FILESYNC_TEST_POSTGRES=(\S+)/.exec(up.stdout)![1];
    notes.push(
      `PostgreSQL started by the bench (tests/services/postgres.sh, ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s)`,
    );
  }
  let s3 = testS3();
  if (s3) notes.push("radosgw from FILESYNC_TEST_S3");
  else {
    const t0 = performance.now();
    const dir = join(await Deno.makeTempDir({ prefix: "filesync-bench-s3-" }), "radosgw");
    const up = await script("radosgw.sh", ["up", dir]);
    if (!up.ok) {
      await stopScaleServices();
      return `no S3 server (tests/services/radosgw.sh: ${
        lastLine(up.stderr).replace(/^\[radosgw\.sh [^\]]*\] /, "")
      })`;
    }
    started.radosgwDir = dir;
    Deno.env.set("FILESYNC_TEST_S3", up.stdout.trim());
    s3 = testS3()!;
    notes.push(
      `radosgw started by the bench (tests/services/radosgw.sh, ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s)`,
    );
  }
  return { postgres, s3, notes };
}

/** The services, brought up on the first call; a string says why there are none (the scenario is skipped). */
export function scaleServices(): Promise<ScaleServices | string> {
  services ??= bringUp();
  return services;
}

/** Stops what {@linkcode scaleServices} started (nothing when the services were given). */
export async function stopScaleServices(): Promise<void> {
  if (started.radosgwDir) {
    await script("radosgw.sh", ["down", started.radosgwDir]);
    await Deno.remove(join(started.radosgwDir, ".."), { recursive: true }).catch(() => {});
    started.radosgwDir = undefined;
  }
  if (started.postgresDir) {
    await script("postgres.sh", ["down", started.postgresDir]);
    started.postgresDir = undefined;
  }
  services = null;
}

/** A fresh empty UTF8 database on the services' PostgreSQL: its URL, and a function that drops it. */
export async function freshBenchDatabase(
  postgres: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = parsePostgresUrl(postgres);
  const name = `filesync_bench_${randomBytes(6).toString("hex")}`;
  const admin = await connectPostgres(server, { max: 1 });
  try {
    await admin.unsafe(`create database ${name} encoding 'UTF8' template template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(postgres);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      const admin = await connectPostgres(server, { max: 1 });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
