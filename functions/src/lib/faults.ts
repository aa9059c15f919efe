/**
 * Fault injection for local reliability runs (see FaultConfig). Config refuses to
 * enable it outside the local stacks, so in production every check here is a no-op.
 */
import type { FaultConfig } from "./config";

export class InjectedFault extends Error {
  override readonly name = "InjectedFault";
}

/** The faults of one delivery of one message. */
export interface DeliveryFaults {
  /** Called for each record mid-processing: after the work, before the write. */
  beforeWrite(text: string): void;
}

export interface FaultInjector {
  forDelivery(attempt: number): DeliveryFaults;
}

export function createFaultInjector(
  faults: FaultConfig,
  crash: () => never,
  random: () => number = Math.random,
): FaultInjector {
  return {
    forDelivery(attempt) {
      // Drawn once per delivery, so FAULT_FAILURE_RATE and FAULT_CRASH_RATE are per attempt as
      // documented: drawn per record, a 20 % rate would fail a 20-record message 99 % of the time.
      const fails = faults.failureRate > 0 && random() < faults.failureRate;
      const crashes = faults.crashRate > 0 && random() < faults.crashRate;
      return {
        beforeWrite(text) {
          if (faults.poisonMarker !== "" && text.includes(faults.poisonMarker)) {
            throw new InjectedFault("injected poison record: it fails on every attempt");
          }
          if (attempt <= faults.failFirstAttempts) {
            throw new InjectedFault(`injected failure of attempt ${attempt}`);
          }
          if (fails) throw new InjectedFault("injected transient failure");
          if (crashes) crash();
        },
      };
    },
  };
}
