import { expect } from "chai";
import { loadConfig } from "../../../functions/src/lib/config";
import { InjectedFault, createFaultInjector } from "../../../functions/src/lib/faults";

function injector(env: Record<string, string>, random: () => number = () => 0.99) {
  const crashes: number[] = [];
  const faults = createFaultInjector(
    loadConfig({ RDP_LOCAL_STACK: "true", ...env }).faults,
    () => {
      crashes.push(1);
      throw new Error("crashed");
    },
    random,
  );
  return { faults, crashes };
}

describe("createFaultInjector", () => {
  it("does nothing when no fault is configured", () => {
    const { faults } = injector({}, () => 0);
    expect(() => faults.forDelivery(1).beforeWrite("anything")).to.not.throw();
  });

  it("fails every attempt of a record whose text carries the poison marker", () => {
    const { faults } = injector({ FAULT_POISON_MARKER: "poison-7f3a" });
    for (let attempt = 1; attempt <= 50; attempt += 1) {
      const delivery = faults.forDelivery(attempt);
      expect(() => delivery.beforeWrite("a poison-7f3a record")).to.throw(InjectedFault, /poison/);
      expect(() => delivery.beforeWrite("a healthy record")).to.not.throw();
    }
  });

  it("draws the failure rate once per delivery, so every record of a message shares it", () => {
    const draws = [0.1, 0.9, 0.9, 0.9];
    const { faults } = injector({ FAULT_FAILURE_RATE: "0.2" }, () => draws.shift() ?? 0.9);
    // The first delivery fails (0.1 < 0.2) for all its records.
    const first = faults.forDelivery(1);
    for (let record = 0; record < 5; record += 1) {
      expect(() => first.beforeWrite(`record ${record}`)).to.throw(InjectedFault);
    }
    // The redelivery draws again.
    const second = faults.forDelivery(2);
    for (let record = 0; record < 5; record += 1) {
      expect(() => second.beforeWrite(`record ${record}`)).to.not.throw();
    }
  });

  it("fails about the configured share of deliveries, whatever their size", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const { faults } = injector({ FAULT_FAILURE_RATE: "0.2" }, random);
    let failed = 0;
    for (let message = 0; message < 2000; message += 1) {
      const delivery = faults.forDelivery(1);
      let threw = false;
      for (let record = 0; record < 20; record += 1) {
        try {
          delivery.beforeWrite(`record ${record}`);
        } catch {
          threw = true;
        }
      }
      if (threw) failed += 1;
    }
    expect(failed / 2000).to.be.within(0.15, 0.25);
  });

  it("crashes at the configured rate and fails the first attempts when asked", () => {
    const crashing = injector({ FAULT_CRASH_RATE: "0.5" }, () => 0.1);
    expect(() => crashing.faults.forDelivery(1).beforeWrite("text")).to.throw("crashed");
    expect(crashing.crashes).to.have.length(1);

    const { faults } = injector({ FAULT_FAIL_FIRST_ATTEMPTS: "2" });
    expect(() => faults.forDelivery(2).beforeWrite("text")).to.throw(InjectedFault, /attempt 2/);
    expect(() => faults.forDelivery(3).beforeWrite("text")).to.not.throw();
  });
});
