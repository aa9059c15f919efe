/**
 * A function's log followed as it grows: the bytes of its own lines (what Cloud Logging would
 * bill), and its "diagnostics" lines (functions/src/lib/diagnostics.ts): event-loop delay, GC
 * pauses, and a count such as records_stored summed into a running total. Reconciliation
 * against Firestore, not this count, decides whether anything was lost.
 */
import fs from "node:fs";

export interface CountSample {
  /** ms on the caller's clock. */
  readonly t: number;
  /** The counted field summed since the log was first read. */
  readonly total: number;
  /** Bytes and lines of the function's own lines so far (diagnostics lines excluded). */
  readonly bytes: number;
  readonly lines: number;
}

const DIAGNOSTICS = '"message":"diagnostics"';

export class FunctionLog {
  readonly series: CountSample[] = [];
  /** Each diagnostics line's fields, at the time it was read. */
  readonly diagnostics: { t: number; fields: Readonly<Record<string, number | null>> }[] = [];
  private offset: number;
  private partial = "";
  private totals = { total: 0, bytes: 0, lines: 0 };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly clock: () => number,
    private readonly countField = "records_stored",
  ) {
    this.offset = fileSize(file); // only what is logged from now on counts
  }

  start(intervalMs = 250): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.poll();
  }

  /** Reads what was appended and returns the running total of the counted field. */
  poll(): number {
    const size = fileSize(this.file);
    if (size < this.offset) this.offset = 0; // truncated: a fresh log
    const t = this.clock();
    if (size > this.offset) {
      const buffer = Buffer.alloc(size - this.offset);
      const fd = fs.openSync(this.file, "r");
      try {
        this.offset += fs.readSync(fd, buffer, 0, buffer.length, this.offset);
      } finally {
        fs.closeSync(fd);
      }
      const lines = (this.partial + buffer.toString("utf8")).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) this.read(line, t);
    }
    this.series.push({ t, ...this.totals });
    return this.totals.total;
  }

  private read(line: string, t: number): void {
    if (!line.includes(DIAGNOSTICS)) {
      this.totals.bytes += Buffer.byteLength(line) + 1;
      this.totals.lines += 1;
      return;
    }
    const fields = JSON.parse(line) as Record<string, number | null>;
    this.totals.total += Number(fields[this.countField] ?? 0);
    this.diagnostics.push({ t, fields });
  }

  get count(): number {
    return this.totals.total;
  }

  /** The change of the totals between the last samples taken at or before `from` and `to`. */
  between(from: number, to: number): Omit<CountSample, "t"> {
    // Before the first sample, nothing had been counted.
    const at = (t: number) => this.series.findLast((sample) => sample.t <= t);
    const [start, end] = [at(from), at(to)];
    const delta = (key: "total" | "bytes" | "lines") => (end?.[key] ?? 0) - (start?.[key] ?? 0);
    return { total: delta("total"), bytes: delta("bytes"), lines: delta("lines") };
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
