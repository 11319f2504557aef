// Byte sizes for people: "1.5 GiB" in messages, "10G" or "500MiB" on the command line.

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Formats a byte count with a binary unit, one or two decimals.
 *
 * @example
 * ```ts
 * formatSize(1536); // "1.5 KiB"
 * ```
 */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  if (bytes < 1024 ** 4) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  return `${(bytes / 1024 ** 4).toFixed(2)} TiB`;
}

/**
 * Parses a size such as `1000`, `64K`, `500MiB`, `1.5G` or `2TB` (units are binary: K = 1024) into bytes.
 * Throws a SyntaxError naming the text for anything else.
 *
 * @example
 * ```ts
 * parseSize("10G"); // 10737418240
 * ```
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new SyntaxError(
      `Invalid size "${text}": use a number with an optional unit (K, M, G, T), e.g. 10G`,
    );
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new SyntaxError(`Invalid size "${text}": too large`);
  return bytes;
}
