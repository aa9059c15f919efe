import { expect } from "chai";
import { startDiagnostics } from "../../../functions/src/lib/diagnostics";
import { createLogger } from "../../../functions/src/lib/logger";

describe("startDiagnostics", () => {
  it("does nothing when the interval is 0 (the default)", async () => {
    const lines: string[] = [];
    const stop = startDiagnostics(
      0,
      createLogger((line) => lines.push(line)),
    );
    await new Promise((resolve) => setTimeout(resolve, 60));
    stop();
    expect(lines).to.deep.equal([]);
  });

  it("logs event-loop delay, GC pauses and the records counted since the last line", async () => {
    const lines: string[] = [];
    const logger = createLogger((line) => lines.push(line));
    const stop = startDiagnostics(100, logger);
    logger.recordSuccess("stored", { log_id: "a" });
    logger.recordSuccess("stored", { log_id: "b" });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const blockedUntil = Date.now() + 40;
    while (Date.now() < blockedUntil); // a synchronous stall the event-loop delay must show
    await new Promise((resolve) => setTimeout(resolve, 190));
    stop();
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.length).to.be.at.least(2);
    expect(entries[0]).to.include({ severity: "INFO", message: "diagnostics", records_stored: 2 });
    expect(entries[0]?.event_loop_delay_max_ms).to.be.at.least(20);
    expect(entries[0]).to.have.keys([
      "severity",
      "message",
      "interval_ms",
      "event_loop_delay_p50_ms",
      "event_loop_delay_p99_ms",
      "event_loop_delay_max_ms",
      "gc_pauses",
      "gc_pause_ms",
      "gc_pause_max_ms",
      "records_stored",
    ]);
    expect(entries[1]).to.not.have.property("records_stored");
  });
});
