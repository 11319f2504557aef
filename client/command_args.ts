// What the commands run against a synced folder share: their argument parsing and server errors as one line.
import { parseArgs } from "node:util";
import { RpcError } from "../protocol/rpc.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";

/**
 * Parses `--dir`, `--help` and `extra` options plus exactly `paths` positional PATHs (none needed with `--help`);
 * a wrong count is a usage error naming `filesync COMMAND --help`.
 */
export function parseFolderCommand(
  args: string[],
  extra: Record<string, { type: "string" | "boolean" }>,
  command: string,
  paths: number,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: "string" }, help: { type: "boolean", short: "h" }, ...extra },
    allowPositionals: true,
    strict: true,
  });
  if (!values.help && positionals.length !== paths) {
    throw new UsageError(`Expected ${paths === 0 ? "no PATH" : "one PATH"} (see filesync ${command} --help)`);
  }
  return { values: values as Record<string, string | boolean | undefined>, positionals };
}

/**
 * A failed server request as one line for the user; `unsupported` says what an older server lacks (an
 * `unknown_op` reply), e.g. "keep history".
 */
export function serverErrorLine(error: unknown, unsupported: string): Error {
  if (error instanceof UserError) return error;
  if (error instanceof RpcError) {
    if (error.code === "unknown_op") {
      return new UserError(`The server does not ${unsupported}: ${error.message}`);
    }
    return new UserError(error.message);
  }
  return new UserError(`Server request failed: ${(error as Error).message}`);
}
