/**
 * Fault injection for local reliability runs (see FaultConfig). Config refuses to
 * enable it outside the local stacks, so in production every check here is a no-op.
 */
import type { FaultConfig } from "./config";

export class InjectedFault extends Error {
  override readonly name = "InjectedFault";
}

export interface FaultInjector {
  /** Called mid-processing, after the work and before the write. */
  beforeWrite(attempt: number): void;
}

export function createFaultInjector(
  faults: FaultConfig,
  crash: () => never,
  random: () => number = Math.random,
): FaultInjector {
  return {
    beforeWrite(attempt) {
      if (attempt <= faults.failFirstAttempts) {
        throw new InjectedFault(`injected failure of attempt ${attempt}`);
      }
      if (faults.failureRate > 0 && random() < faults.failureRate) {
        throw new InjectedFault("injected transient failure");
      }
      if (faults.crashRate > 0 && random() < faults.crashRate) crash();
    },
  };
}
