/**
 * Waiting for the pipeline to drain after a load phase: until the worker's log shows as many
 * stored records as were accepted, or nothing new was stored for a while, bounded in time.
 */
import { sleep } from "../emulators";
import type { StoredCounter } from "./log-counter";

export interface DrainResult {
  readonly drained: boolean;
  /** ms from the call until the last expected record was stored (or until giving up). */
  readonly ms: number;
  readonly stored: number;
}

export async function waitForDrain(
  counter: StoredCounter,
  options: {
    /** Counter value when the phase began. */
    readonly baseline: number;
    readonly expected: number;
    readonly timeoutMs: number;
    /** Give up early once nothing was stored for this long. */
    readonly idleMs?: number;
  },
): Promise<DrainResult> {
  const started = Date.now();
  const idleMs = options.idleMs ?? 15_000;
  let lastCount = counter.poll();
  let lastChange = Date.now();
  for (;;) {
    const stored = counter.poll() - options.baseline;
    if (stored >= options.expected) return { drained: true, ms: Date.now() - started, stored };
    if (counter.count !== lastCount) {
      lastCount = counter.count;
      lastChange = Date.now();
    }
    const now = Date.now();
    if (now - started >= options.timeoutMs || now - lastChange >= idleMs) {
      return { drained: false, ms: now - started, stored };
    }
    await sleep(50);
  }
}
