// Reads a password without putting it on the command line: FILESYNC_PASSWORD, a silent prompt, or stdin.
import { UserError } from "../protocol/user_error.ts";

/** Name of the environment variable that may hold the password. */
export const PASSWORD_ENV = "FILESYNC_PASSWORD";

/**
 * The password from FILESYNC_PASSWORD, else typed at a terminal (not echoed), else the first line of stdin.
 * Throws {@linkcode UserError} when none is given.
 */
export async function readPassword(prompt: string): Promise<string> {
  const fromEnv = Deno.env.get(PASSWORD_ENV);
  if (fromEnv) return fromEnv;
  if (Deno.stdin.isTerminal()) return await promptSilently(prompt);
  const line = await readLine(Deno.stdin.readable);
  if (!line) throw new UserError(`No password: set ${PASSWORD_ENV} or pass it on standard input`);
  return line;
}

/**
 * The password typed at a terminal (not echoed), never from FILESYNC_PASSWORD or piped input: for when a person
 * must give it (a revoked device logging in again). Null when standard input is not a terminal.
 */
export function askAtTerminal(prompt: string): (() => Promise<string>) | null {
  return Deno.stdin.isTerminal() ? () => promptSilently(prompt) : null;
}

async function promptSilently(prompt: string): Promise<string> {
  const encoder = new TextEncoder();
  await Deno.stderr.write(encoder.encode(prompt));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buffer = new Uint8Array(64);
  try {
    outer: while (true) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 13 || byte === 10) break outer;
        if (byte === 3) throw new UserError("Cancelled");
        if (byte === 127 || byte === 8) bytes.pop();
        else bytes.push(byte);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  const password = new TextDecoder().decode(new Uint8Array(bytes));
  if (!password) throw new UserError("Empty password");
  return password;
}

/** Reads the first line of a stream (without its line ending). */
export async function readLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
  return text.split(/\r?\n/)[0];
}
