/**
 * The scenarios of `npm run load -- <name>`: open-loop arrivals in requests a second, one
 * record a request (texts of lib/payloads.ts). `ensure` holds the pass thresholds: latency
 * percentiles in ms from each request's scheduled send time, and the share in percent of
 * requests that may end without a 202.
 */
import type { Phase } from "./load-engine";

export interface Scenario {
  readonly about: string;
  readonly phases: readonly Phase[];
  readonly ensure: Partial<Record<"p50" | "p95" | "p99", number>> & { maxErrorRate: number };
  /** Extra environment of the local stack's functions. */
  readonly stackEnv?: Readonly<Record<string, string>>;
}

/** The brief: 1,000 requests a minute. */
const BRIEF = 1000 / 60;

export const SCENARIOS: Readonly<Record<string, Scenario>> = {
  baseline: {
    about: "the brief: 1,000 requests a minute for 2 minutes",
    phases: [{ name: "brief", seconds: 120, rate: BRIEF }],
    ensure: { p95: 30, p99: 50, maxErrorRate: 0 },
  },
  // A fifth of the worker's deliveries fail and are redelivered, and now and then it dies
  // mid-message; ingest is not faulted, but shares the CPU with the restarted worker.
  chaos: {
    about: "the brief's rate with worker faults on",
    phases: [{ name: "brief, worker faults", seconds: 120, rate: BRIEF }],
    ensure: { p99: 200, maxErrorRate: 0 },
    stackEnv: { FAULT_FAILURE_RATE: "0.2", FAULT_CRASH_RATE: "0.002" },
  },
  // Finds the knee (p99 in the 10 s lines, the drain time after): loose thresholds on purpose,
  // as the ramp is meant to pass the knee, not to fail at it.
  ramp: {
    about: "from 1,000 to 30,000 requests a minute over 3 minutes",
    phases: [
      { name: "warm", seconds: 20, rate: 17 },
      { name: "ramp", seconds: 180, rate: 17, rampTo: 500 },
      { name: "top", seconds: 20, rate: 500 },
    ],
    ensure: { p99: 1000, maxErrorRate: 1 },
  },
  spike: {
    about: "the brief's rate, 10x it for 30 s, then back",
    phases: [
      { name: "before", seconds: 30, rate: BRIEF },
      { name: "spike", seconds: 30, rate: 10 * BRIEF },
      { name: "after", seconds: 60, rate: BRIEF },
    ],
    ensure: { p50: 50, p99: 500, maxErrorRate: 0 },
  },
  // Optional, 12 minutes: memory, latency and the backlog must stay flat, not creep up.
  soak: {
    about: "2,000 requests a minute for 12 minutes",
    phases: [{ name: "soak", seconds: 720, rate: 2 * BRIEF }],
    ensure: { p99: 100, maxErrorRate: 0 },
  },
};
