// Reads the CA certificate a user names with --ca, with one clear line when it cannot be used.
import { UserError } from "../protocol/user_error.ts";

/** The PEM text of the `--ca` file at `path`; a {@linkcode UserError} when it cannot be read or holds no certificate. */
export async function readCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await Deno.readTextFile(path);
  } catch (error) {
    throw new UserError(`Cannot read --ca "${path}": ${(error as Error).message}`);
  }
  if (!pem.includes("BEGIN CERTIFICATE")) throw new UserError(`--ca "${path}" holds no PEM certificate`);
  return pem;
}
