/**
 * Records stored over time, read from the worker's log: the worker prints one structured line
 * `"message":"record stored"` for every document it creates. The log is read incrementally on
 * a timer, so the series has the timer's resolution; the reconciliation against Firestore, not
 * this counter, decides whether anything was lost.
 */
import fs from "node:fs";

const STORED = '"message":"record stored"';

export interface CountSample {
  /** ms on the caller's clock. */
  readonly t: number;
  /** Records stored since the counter started. */
  readonly total: number;
}

export class StoredCounter {
  readonly series: CountSample[] = [];
  private offset: number;
  private partial = "";
  private total = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly clock: () => number,
    private readonly intervalMs = 250,
  ) {
    // Only what is logged from now on counts.
    this.offset = fileSize(file);
  }

  start(): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.poll();
  }

  /** Reads what was appended and returns the running total. */
  poll(): number {
    const size = fileSize(this.file);
    if (size < this.offset) this.offset = 0; // truncated: a fresh log
    if (size > this.offset) {
      const fd = fs.openSync(this.file, "r");
      try {
        const buffer = Buffer.alloc(size - this.offset);
        const read = fs.readSync(fd, buffer, 0, buffer.length, this.offset);
        this.offset += read;
        const lines = (this.partial + buffer.toString("utf8", 0, read)).split("\n");
        this.partial = lines.pop() ?? "";
        for (const line of lines) if (line.includes(STORED)) this.total += 1;
      } finally {
        fs.closeSync(fd);
      }
    }
    this.series.push({ t: this.clock(), total: this.total });
    return this.total;
  }

  get count(): number {
    return this.total;
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
