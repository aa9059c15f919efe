/**
 * Opt-in runtime diagnostics (DIAGNOSTICS_INTERVAL_MS > 0): every interval, one INFO line
 * "diagnostics" with the event loop's delay (how late a 10 ms timer fired: synchronous work
 * or CPU starvation), the garbage collector's pauses, and the records counted by
 * logger.recordSuccess, so tail latency can be traced to its cause and records counted
 * without a line per record. Off by default; `npm run bench` turns it on.
 */
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import type { Logger } from "./logger";

const NS_PER_MS = 1e6;
/** The delay monitor's timer period; it records the period plus the delay, so it is taken off. */
const RESOLUTION_MS = 10;

export function startDiagnostics(intervalMs: number, logger: Logger): () => void {
  if (intervalMs <= 0) return () => undefined;
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  delay.enable();
  let gc = { pauses: 0, totalMs: 0, maxMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.pauses += 1;
      gc.totalMs += entry.duration;
      gc.maxMs = Math.max(gc.maxMs, entry.duration);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  const round = (ms: number) => Math.round(ms * 100) / 100;
  const late = (ns: number) =>
    delay.count > 0 ? round(Math.max(0, ns / NS_PER_MS - RESOLUTION_MS)) : null;
  const timer = setInterval(() => {
    logger.info("diagnostics", {
      interval_ms: intervalMs,
      event_loop_delay_p50_ms: late(delay.percentile(50)),
      event_loop_delay_p99_ms: late(delay.percentile(99)),
      event_loop_delay_max_ms: late(delay.max),
      gc_pauses: gc.pauses,
      gc_pause_ms: round(gc.totalMs),
      gc_pause_max_ms: round(gc.maxMs),
      ...logger.takeRecordCounts(),
    });
    delay.reset();
    gc = { pauses: 0, totalMs: 0, maxMs: 0 };
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    observer.disconnect();
    delay.disable();
  };
}
