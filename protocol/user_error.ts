// An error meant for the person at the terminal: printed as one line, without a stack trace.

/** A failure the user can act on (bad option, wrong password, port in use …). The CLI prints only its message. */
export class UserError extends Error {
  override name = "UserError";
}

/** Wrong use of the command line (unknown command, missing or invalid option): exit code 2. */
export class UsageError extends UserError {
  override name = "UsageError";
}
