// Work started in list order with at most a few tasks running at once.

/**
 * Starts `run` for each item of `list` in order, with at most `limit` running at once; returns their results'
 * promises in list order at once (each settles as its task does, so callers may await them in order).
 */
export function boundedMap<T, R>(
  list: readonly T[],
  limit: number,
  run: (item: T) => Promise<R>,
): Promise<R>[] {
  let next = 0;
  const starters: (() => void)[] = [];
  const results = list.map((item) =>
    new Promise<R>((resolve, reject) => {
      starters.push(() => {
        new Promise<R>((ran) => ran(run(item))).then(resolve, reject).finally(() => {
          if (next < starters.length) starters[next++]();
        });
      });
    })
  );
  while (next < Math.min(limit, starters.length)) starters[next++]();
  return results;
}
