// How many queued changes go in one COMMIT: content-free changes (moves, deletes, mkdirs) up to the server's
// limit, uploads (whose chunk rows travel in the COMMIT's data) fewer.
import { type Change, MAX_BATCH } from "../protocol/messages.ts";

/** Most uploads in one COMMIT (each brings its chunk rows: the COMMIT's data stays bounded). */
export const UPLOADS_PER_COMMIT = 200;

/**
 * The number of changes from the front of `changes` that go in the next COMMIT: at most
 * {@linkcode MAX_BATCH} in all and at most {@linkcode UPLOADS_PER_COMMIT} uploads; 0 only for an empty list.
 *
 * @example
 * ```ts
 * commitBatchSize(moves1000); // 1000: one folder rename of 1,000 files is one COMMIT
 * ```
 */
export function commitBatchSize(changes: readonly Pick<Change, "op">[]): number {
  let uploads = 0;
  let n = 0;
  while (n < changes.length && n < MAX_BATCH) {
    if (changes[n].op === "upload") {
      if (uploads === UPLOADS_PER_COMMIT) break;
      uploads++;
    }
    n++;
  }
  return n;
}
