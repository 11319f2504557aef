// Copies byte ranges between files inside the kernel (copy_file_range(2) through libc), without reading them in JS.

/** The libc calls used here; null where libc or FFI is unavailable (not Linux, no --allow-ffi). */
type Libc = {
  open: (path: Uint8Array, flags: number) => number;
  close: (fd: number) => number;
  copy_file_range: (
    inFd: number,
    inOffset: BigInt64Array,
    outFd: number,
    outOffset: BigInt64Array,
    length: bigint,
    flags: number,
  ) => bigint;
};

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CLOEXEC = 0o2000000;
/** Refuse a symbolic link as the last component (the value differs between architectures). */
const O_NOFOLLOW = Deno.build.arch === "aarch64" ? 0o100000 : 0o400000;

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux") return libc;
  try {
    const lib = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      copy_file_range: {
        parameters: ["i32", "buffer", "i32", "buffer", "usize", "u32"],
        result: "isize",
        nonblocking: false,
      },
    });
    libc = lib.symbols as unknown as Libc;
  } catch {
    libc = null; // no FFI permission, or no glibc: callers copy through JS instead
  }
  return libc;
}

const encoder = new TextEncoder();

/**
 * A file opened through libc for in-kernel copies. Its stat is that of the open file (through /proc/self/fd),
 * so a check of it holds for the bytes copied even if the path is replaced meanwhile.
 */
export class RawFile implements Disposable {
  readonly fd: number;
  #closed = false;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Opens `path` for reading (`mode` "read") or writing ("write", the file must exist); null when in-kernel
   * copies are not available here or the file cannot be opened.
   */
  static open(path: string, mode: "read" | "write"): RawFile | null {
    const lib = loadLibc();
    if (!lib) return null;
    const fd = lib.open(
      encoder.encode(path + "\0"),
      (mode === "read" ? O_RDONLY : O_WRONLY) | O_CLOEXEC | O_NOFOLLOW,
    );
    return fd < 0 ? null : new RawFile(fd);
  }

  /** The stat of the open file (not of whatever its path names now). */
  stat(): Deno.FileInfo {
    return Deno.statSync(`/proc/self/fd/${this.fd}`);
  }

  /**
   * Copies `length` bytes at `from` in this file to `to` in `target`, inside the kernel. Returns false (having
   * copied some or none) when the kernel refuses (e.g. another file system): the caller copies another way.
   */
  copyTo(target: RawFile, range: { from: number; to: number; length: number }): boolean {
    const lib = loadLibc()!;
    const inOffset = new BigInt64Array([BigInt(range.from)]);
    const outOffset = new BigInt64Array([BigInt(range.to)]);
    let left = range.length;
    while (left > 0) {
      const n = Number(lib.copy_file_range(this.fd, inOffset, target.fd, outOffset, BigInt(left), 0));
      if (n <= 0) return false; // -1: refused; 0: the source ended early
      left -= n;
    }
    return true;
  }

  /** Closes the file (once). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    loadLibc()?.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
