// Connection caps: how many connections may be open at once, per address and in total.

/** Options of {@linkcode ConnectionCaps}. */
export interface ConnectionCapsOptions {
  /** Connections at once, over all addresses. @default 512 */
  maxConnections?: number;
  /** Connections at once from one address. @default 64 */
  maxConnectionsPerAddress?: number;
}

/**
 * Counts open connections per address and in total; a connection over a cap is refused.
 *
 * @example
 * ```ts
 * const caps = new ConnectionCaps({ maxConnectionsPerAddress: 1 });
 * caps.admit("10.0.0.1"); // null: admitted
 * caps.admit("10.0.0.1"); // "1 connections open from this address (the limit is 1)"
 * caps.release("10.0.0.1");
 * ```
 */
export class ConnectionCaps {
  #total = 0;
  #perAddress = new Map<string, number>();
  #maxTotal: number;
  #maxPerAddress: number;

  constructor(options: ConnectionCapsOptions = {}) {
    this.#maxTotal = options.maxConnections ?? 512;
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? 64;
  }

  /** Connections counted now. */
  get size(): number {
    return this.#total;
  }

  /** Counts a new connection from `address` and returns null, or returns why it is refused (not counted). */
  admit(address: string): string | null {
    const fromAddress = this.#perAddress.get(address) ?? 0;
    if (this.#total >= this.#maxTotal) {
      return `${this.#total} connections open (the limit is ${this.#maxTotal})`;
    }
    if (fromAddress >= this.#maxPerAddress) {
      return `${fromAddress} connections open from this address (the limit is ${this.#maxPerAddress})`;
    }
    this.#total++;
    this.#perAddress.set(address, fromAddress + 1);
    return null;
  }

  /** Forgets one admitted connection from `address`. */
  release(address: string): void {
    const left = this.#perAddress.get(address);
    if (left === undefined) return;
    this.#total--;
    if (left > 1) this.#perAddress.set(address, left - 1);
    else this.#perAddress.delete(address);
  }
}
