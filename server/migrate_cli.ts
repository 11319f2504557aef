// `filesync server migrate`: creates or updates the PostgreSQL metadata schema, and nothing else.
import { parseArgs } from "node:util";
import { UsageError } from "../protocol/user_error.ts";
import { isPostgresUrl } from "./pg_connect.ts";
import { closeMetadata, openMetadata } from "./metadata_open.ts";
import { storeOptions } from "./server_config.ts";

/** Help text of `filesync server migrate`. */
export const MIGRATE_HELP =
  `Usage: filesync server migrate --metadata postgres://USER@HOST:PORT/DB [--data DIR]

Creates the metadata schema in an empty PostgreSQL database, or brings an older one up to this version (in
one transaction; several servers starting at once take turns). "filesync server" does the same on start;
run this alone to migrate with another role, or before starting several nodes. With --data DIR, --metadata
and "metadata-password" may come from DIR/config.json. The password comes from PGPASSWORD, ~/.pgpass or
that key, never from the command line.
`;

/** Runs `filesync server migrate ARGS`. */
export async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      metadata: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(MIGRATE_HELP);
    return 0;
  }
  const stores = values.data
    ? await storeOptions(values.data, values)
    : { ...values, metadataPassword: undefined };
  if (stores.metadata === undefined || !isPostgresUrl(stores.metadata)) {
    throw new UsageError(
      "Missing --metadata postgres://USER@HOST:PORT/DB (Deno KV needs no migration; see filesync server migrate --help)",
    );
  }
  const store = await openMetadata({
    dataDir: values.data ?? ".",
    metadata: stores.metadata,
    password: stores.metadataPassword,
    log: (line) => console.log(line),
  });
  await closeMetadata(store);
  return 0;
}
