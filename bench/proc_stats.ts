// Reads a process's CPU time and peak memory from /proc (Linux), for benchmark reports.

/** CPU seconds (user + system) and peak resident memory of a process. */
export interface ProcStats {
  cpuSeconds: number;
  peakRssBytes: number;
}

const TICKS_PER_SECOND = 100;

/** Stats of a live process, or null if it is gone or /proc is unavailable. */
export function procStats(pid: number): ProcStats | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    return { cpuSeconds, peakRssBytes: hwm ? Number(hwm[1]) * 1024 : 0 };
  } catch {
    return null;
  }
}
