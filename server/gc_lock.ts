// A shared/exclusive lock: uploads and commits share it, garbage collection takes it alone (in one process).

/** Many shared holders at once, or one exclusive holder; waiting exclusive requests block new shared ones. */
export class SharedExclusiveLock {
  #shared = 0;
  #exclusive = false;
  #waitingExclusive = 0;
  #wakers: (() => void)[] = [];
  /** Bumped each time an exclusive section ends: caches of "the store has chunk X" older than this are stale. */
  generation = 0;

  #wake(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }

  /** Runs `fn` while holding the lock shared. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive || this.#waitingExclusive > 0) {
      await new Promise<void>((r) => this.#wakers.push(r));
    }
    this.#shared++;
    try {
      return await fn();
    } finally {
      this.#shared--;
      if (this.#shared === 0) this.#wake();
    }
  }

  /** Runs `fn` while holding the lock alone. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#alone(fn);
  }

  /**
   * Lets a collection on another node in: admits no new shared holder until the current ones are done, and
   * forgets what this node cached about stored chunks (bumps {@linkcode generation}). Resolves once they are done.
   */
  pause(): Promise<void> {
    return this.#alone(() => Promise.resolve());
  }

  async #alone<T>(fn: () => Promise<T>): Promise<T> {
    this.#waitingExclusive++;
    try {
      while (this.#exclusive || this.#shared > 0) await new Promise<void>((r) => this.#wakers.push(r));
    } finally {
      this.#waitingExclusive--;
    }
    this.#exclusive = true;
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.generation++;
      this.#wake();
    }
  }
}
