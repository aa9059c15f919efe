/**
 * Chaos tests: the product promises that a 202 is never lost and never doubled, whatever
 * crashes. Each scenario drives load through the production-faithful stack while a fault is
 * injected, then reconciles every accepted record against Firestore (scripts/operate/lib/reconcile.ts):
 * missing = 0, duplicated = 0, nothing unexpected. Figures of each scenario are printed and
 * written to .run/integration-<run>/chaos-summary.json; docs/RELIABILITY.md quotes a full run.
 *
 * Local choices (see docs/RELIABILITY.md for the reasons):
 * - The local push subscriptions have no retry policy (scripts/local/lib/stack.ts, pushTopology):
 *   with one, the Pub/Sub emulator 0.8.20 stalls once pushes fail repeatedly. Without one it
 *   redelivers a failed push after about 1 s.
 * - Both emulators keep their state in memory, so stopping one wipes it. The outage scenarios
 *   therefore let the records accepted so far drain (and reconcile the Firestore ones) before
 *   the stop, and hold the load back while the emulator starts and the topology is recreated.
 *   What they test is the product under the outage: ingest's 503s and recovery, the worker's
 *   retries, and every 202 stored.
 */
import { expect } from "chai";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Firestore, type QueryDocumentSnapshot } from "@google-cloud/firestore";
import type { Emulator } from "../../scripts/local/lib/emulators";
import {
  type LoadOptions,
  type LoadReport,
  LoadGate,
  runLoad,
} from "../../scripts/measure/lib/load-engine";
import {
  type ExpectedRecord,
  type ReconcileReport,
  countDocuments,
  fileSizeActivity,
  formatReport,
  reconcileRun,
  reportJson,
  sha256Hex,
  waitForDrain,
  toReconcileJsonl,
} from "../../scripts/operate/lib/reconcile";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { logLineText } from "../../scripts/measure/lib/payloads";
import { RUN_LOG_DIR } from "./support/hooks";
import { runCli } from "./support/ops-cli";
import {
  RUN_ID,
  TEST_PROJECT,
  type TestStack,
  logEntries,
  pollUntil,
  sharedEmulators,
  startTestStack,
} from "./support/stack";

/** Drained once nothing changed for this long: above the ~1 s redelivery of a failed push. */
const QUIET_MS = 4_000;
const DRAIN_TIMEOUT_MS = 90_000;
const FAILED_ATTEMPT = "processing attempt failed; Pub/Sub will redeliver";
const CHAOS_COMMAND =
  "npx mocha --require test/integration/support/hooks.ts --timeout 60000 " +
  "test/integration/chaos.test.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ScenarioFigures {
  readonly scenario: string;
  readonly records: number;
  readonly accepted: number;
  readonly inDoubt: number;
  readonly rejected: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly stored: number;
  readonly missing: number;
  readonly duplicated: number;
  readonly wrongContent: number;
  readonly unexpected: number;
  readonly deadLettered: number;
  readonly inDoubtStored: number;
  /** Documents written by a delivery attempt > 1, and the highest attempt seen. */
  readonly retriedDocuments: number;
  readonly maxAttempt: number;
  /** Attempts the worker logged as failed (each one a redelivery). */
  readonly failedAttempts: number;
  readonly workerRestarts: number;
  readonly notes: string;
  readonly seconds: number;
}

const figures: ScenarioFigures[] = [];

describe("chaos: every accepted record is stored exactly once", function () {
  // Bounds for a slow, shared machine; a scenario takes 15-40 s on an idle one.
  this.timeout(150_000);
  let firestore: Firestore;
  const stacks: TestStack[] = [];
  const suiteStart = Date.now();

  const tenantsOf = (scenario: string, count: number) =>
    Array.from({ length: count }, (_, index) => `chaos-${RUN_ID}-${scenario}-${index}`);

  async function chaosStack(
    suffix: string,
    env: Readonly<Record<string, string>> = {},
  ): Promise<TestStack> {
    const stack = await startTestStack(`chaos-${suffix}`, { AUTH_MODE: "disabled", ...env });
    stacks.push(stack);
    return stack;
  }

  function load(stack: TestStack, options: Omit<LoadOptions, "url">): Promise<LoadReport> {
    // Log lines without the 1-4 KB traces: the scenarios' time budgets assume short texts.
    const textOf = (n: number) => logLineText(n, options.seed);
    return runLoad({ url: stack.ingestUrl, textOf, ...options });
  }

  async function reconcileStack(
    stack: TestStack,
    input: { accepted: readonly ExpectedRecord[]; inDoubt?: readonly ExpectedRecord[] },
    tenants: readonly string[],
  ): Promise<ReconcileReport> {
    return reconcileRun(
      firestore,
      { ...input, tenants },
      {
        timeoutMs: DRAIN_TIMEOUT_MS,
        quietMs: QUIET_MS,
        stallMs: 30_000,
        activity: fileSizeActivity([stack.logs.process]),
      },
    );
  }

  async function record(
    scenario: string,
    stack: TestStack,
    loads: readonly LoadReport[],
    report: ReconcileReport,
    startedAt: number,
    notes: string,
  ): Promise<void> {
    const entries = await logEntries(stack.logs.process);
    const statuses: Record<string, number> = {};
    for (const run of loads) {
      for (const [status, n] of Object.entries(run.statuses)) {
        statuses[status] = (statuses[status] ?? 0) + n;
      }
    }
    const sum = (pick: (run: LoadReport) => number) =>
      loads.reduce((total, run) => total + pick(run), 0);
    const entry: ScenarioFigures = {
      scenario,
      records: sum((run) => run.records),
      accepted: report.accepted,
      inDoubt: report.inDoubt,
      rejected: sum((run) => run.rejected.length),
      statuses,
      stored: report.stored,
      missing: report.missing,
      duplicated: report.duplicated,
      wrongContent: report.wrongContent,
      unexpected: report.unexpected,
      deadLettered: report.deadLettered,
      inDoubtStored: report.inDoubtStored,
      retriedDocuments: report.retries.retried,
      maxAttempt: report.retries.maxAttempt,
      failedAttempts: entries.filter((line) => line.message === FAILED_ATTEMPT).length,
      workerRestarts: stack.worker.restarts,
      notes,
      seconds: Math.round((Date.now() - startedAt) / 100) / 10,
    };
    figures.push(entry);
    console.log(`\n${formatReport(report, `    ${scenario}`).replace(/^/gm, "    ")}`);
    console.log(`    ${JSON.stringify(entry)}`);
    // The accepted list, as the reconcile CLI reads it, to re-check a run by hand.
    await writeFile(
      path.join(stack.logs.dir, "accepted.jsonl"),
      toReconcileJsonl({
        accepted: loads.flatMap((run) => run.accepted),
        inDoubt: loads.flatMap((run) => run.inDoubt),
      }),
    );
    await writeFile(path.join(stack.logs.dir, "reconcile.json"), `${reportJson(report)}\n`);
  }

  function expectExactlyOnce(report: ReconcileReport): void {
    expect(
      { missing: report.missing, duplicated: report.duplicated },
      formatReport(report),
    ).to.deep.equal({ missing: 0, duplicated: 0 });
    expect(
      { wrongContent: report.wrongContent, unexpected: report.unexpected },
      formatReport(report),
    ).to.deep.equal({ wrongContent: 0, unexpected: 0 });
    expect(report.drain?.drained, formatReport(report)).to.equal(true);
  }

  /** Runs `during` with the emulator stopped; starts it again whatever happens. */
  async function withEmulatorStopped(emulator: Emulator, during: () => Promise<void>) {
    await emulator.stop();
    try {
      await during();
    } finally {
      if (!emulator.running) await emulator.start();
    }
  }

  /** Resolves once `fraction` of the planned requests have been answered. */
  function progress(total: number) {
    let done = 0;
    const waiters: Array<{ at: number; resolve: () => void }> = [];
    return {
      onOutcome: () => {
        done += 1;
        for (const waiter of waiters.filter((entry) => done >= entry.at)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      },
      reached: (fraction: number) =>
        new Promise<void>((resolve) => {
          const at = Math.ceil(total * fraction);
          if (done >= at) resolve();
          else waiters.push({ at, resolve });
        }),
    };
  }

  before(() => {
    firestore = new Firestore({ projectId: TEST_PROJECT });
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.allSettled(stacks.map((stack) => stack.stop()));
    await firestore?.terminate();
    const summary = {
      run: RUN_ID,
      command: CHAOS_COMMAND,
      seconds: Math.round((Date.now() - suiteStart) / 1000),
      scenarios: figures,
    };
    await writeFile(
      path.join(RUN_LOG_DIR, "chaos-summary.json"),
      `${JSON.stringify(summary, null, 2)}\n`,
    );
    console.log(
      `\n    chaos summary (${summary.seconds} s): ${path.join(RUN_LOG_DIR, "chaos-summary.json")}`,
    );
    for (const entry of figures) {
      console.log(
        `    | ${entry.scenario} | ${entry.accepted} | ${entry.stored} | ${entry.missing} | ` +
          `${entry.duplicated} | ${entry.deadLettered} | ${entry.inDoubt} (${entry.inDoubtStored} stored) | ` +
          `${entry.retriedDocuments} docs > 1, max ${entry.maxAttempt}, ${entry.failedAttempts} failed attempts | ` +
          `${entry.workerRestarts} |`,
      );
    }
  });

  it("stores a few thousand records exactly once under 20 % transient failures and worker kills", async () => {
    const startedAt = Date.now();
    const stack = await chaosStack("mixed", {
      FAULT_FAILURE_RATE: "0.2",
      // Random crashes on top of the three kills below, mid-processing, before the write.
      FAULT_CRASH_RATE: "0.002",
      // Scaled down from the pipeline issue's 50 ms so the run fits: messages stay in flight
      // for 1-20 ms each, and the two push threads keep the worker busy the whole run.
      SIMULATED_WORK_MS_PER_CHAR: "0.05",
    });
    const records = 3000;
    const tenants = tenantsOf("mixed", 4);
    const tracker = progress(records);
    const running = load(stack, {
      records,
      tenants,
      concurrency: 32,
      logIdPrefix: `mixed-${RUN_ID}`,
      seed: 4,
      onOutcome: tracker.onOutcome,
    });

    // Three SIGKILLs while records are in flight, each after the previous replacement answers.
    let kills = 0;
    for (const fraction of [0.25, 0.5, 0.75]) {
      await tracker.reached(fraction);
      const pid = await pollUntil(async () => stack.worker.pid, {
        timeoutMs: 60_000,
        what: "a running worker",
      });
      process.kill(pid, "SIGKILL");
      kills += 1;
      await pollUntil(
        async () => (stack.worker.pid !== undefined && stack.worker.pid !== pid ? true : undefined),
        { timeoutMs: 60_000, what: "the supervisor to replace the killed worker" },
      );
    }
    const loadReport = await running;
    const report = await reconcileStack(stack, loadReport, tenants);
    await record(
      "20 % transient failures + worker kills",
      stack,
      [loadReport],
      report,
      startedAt,
      `${kills} SIGKILLs by the test, FAULT_CRASH_RATE=0.002 on top`,
    );

    expect(loadReport.accepted.length).to.be.at.least(records * 0.9);
    expectExactlyOnce(report);
    expect(report.stored).to.equal(report.accepted);
    expect(stack.worker.restarts).to.be.at.least(3);
    expect(report.retries.retried, "documents written by a retry").to.be.greaterThan(0);
    const supervisor = (await stack.readLog("process")).match(/instance exited on SIGKILL/g);
    expect(supervisor?.length ?? 0).to.be.at.least(3);
  });

  it("answers 503 in time while Pub/Sub is down, recovers without a restart, stores every 202", async () => {
    const startedAt = Date.now();
    const publishTimeoutMs = 2_000;
    const stack = await chaosStack("pubsub", { PUBLISH_TIMEOUT_MS: String(publishTimeoutMs) });
    const { pubsub } = sharedEmulators().emulators;
    const tenants = tenantsOf("pubsub", 3);
    const records = 400;
    const gate = new LoadGate();
    const tracker = progress(records);
    let acceptedSoFar = 0;
    const running = load(stack, {
      records,
      tenants,
      concurrency: 8,
      ratePerSecond: 40,
      logIdPrefix: `pubsub-${RUN_ID}`,
      seed: 5,
      gate,
      onOutcome: (outcome) => {
        tracker.onOutcome();
        if (outcome.status === 202) acceptedSoFar += 1;
      },
    });

    let outageStart = 0;
    let outageEnd = 0;
    try {
      await tracker.reached(0.25);
      await gate.closeAndSettle();
      // What was accepted so far is delivered before the stop: the emulator's backlog lives in
      // memory and a stop would wipe it, which production Pub/Sub never does.
      await waitForDrain(() => countDocuments(firestore, tenants), acceptedSoFar, {
        timeoutMs: DRAIN_TIMEOUT_MS,
        quietMs: 1_000,
      });
      await withEmulatorStopped(pubsub, async () => {
        outageStart = Date.now();
        gate.open();
        await sleep(6_000);
        await gate.closeAndSettle();
        outageEnd = Date.now();
      });
      // Back on the same port, empty: recreate the topic and push subscription before any
      // publish, as they exist all along in production.
      await stack.ensureTopology();
    } finally {
      gate.open();
    }
    const loadReport = await running;
    const report = await reconcileStack(stack, loadReport, tenants);

    const during = loadReport.outcomes.filter(
      (outcome) => outcome.sentAt >= outageStart && outcome.answeredAt <= outageEnd,
    );
    const after = loadReport.outcomes.filter((outcome) => outcome.sentAt > outageEnd);
    const slowest = Math.max(0, ...during.map((outcome) => outcome.answeredAt - outcome.sentAt));
    await record(
      "Pub/Sub emulator stopped",
      stack,
      [loadReport],
      report,
      startedAt,
      `${during.length} requests during the outage, all answered in at most ${slowest} ms ` +
        `(PUBLISH_TIMEOUT_MS=${publishTimeoutMs}); ` +
        `${after.filter((outcome) => outcome.status === 202).length} 202s after it`,
    );

    expect(during.length, "requests answered during the outage").to.be.greaterThan(0);
    for (const outcome of during) {
      expect(outcome.status, JSON.stringify(outcome)).to.equal(503);
      expect(outcome.retryAfter).to.match(/^\d+$/);
    }
    // No hanging connection: every request got an answer before the client's 30 s bound.
    expect(loadReport.statuses).to.not.have.property("timeout");
    expect(after.filter((outcome) => outcome.status === 202).length).to.be.greaterThan(0);
    // The same ingest instance served throughout: functions-framework printed its banner once.
    expect((await stack.readLog("ingest")).match(/Serving function/g)).to.have.length(1);
    expectExactlyOnce(report);
  });

  it("retries while Firestore is down and stores everything once it is back", async () => {
    const startedAt = Date.now();
    // The Firestore client retries an unreachable backend for a minute; the worker's own
    // deadline turns that into a failed delivery (and a redelivery) much sooner.
    const stack = await chaosStack("firestore", {
      SIMULATED_WORK_MS_PER_CHAR: "0.05",
      STORE_TIMEOUT_MS: "1500",
    });
    const { firestore: firestoreEmulator } = sharedEmulators().emulators;
    const tenants = tenantsOf("firestore", 3);
    const records = 400;
    const gate = new LoadGate();
    const tracker = progress(records);
    const before: ExpectedRecord[] = [];
    let stopped = false;
    const running = load(stack, {
      records,
      tenants,
      concurrency: 8,
      ratePerSecond: 40,
      logIdPrefix: `firestore-${RUN_ID}`,
      seed: 6,
      gate,
      onOutcome: (outcome) => {
        tracker.onOutcome();
        if (!stopped && outcome.status === 202) before.push(...outcome.records);
      },
    });

    let beforeReport: ReconcileReport | undefined;
    let beforeIds = new Set<string>();
    let failuresDuringOutage = 0;
    try {
      await tracker.reached(0.25);
      await gate.closeAndSettle();
      stopped = true;
      beforeIds = new Set(before.map((outcome) => `${outcome.tenant_id}/${outcome.log_id}`));
      // The emulator keeps documents in memory and a restart wipes them, so what was stored
      // before the outage is reconciled now, before the stop.
      beforeReport = await reconcileStack(stack, { accepted: before }, []);
      const failuresBefore = (await logEntries(stack.logs.process)).filter(
        (line) => line.message === FAILED_ATTEMPT,
      ).length;
      await withEmulatorStopped(firestoreEmulator, async () => {
        gate.open();
        // Records keep arriving; the worker fails every write and Pub/Sub redelivers them.
        await pollUntil(
          async () => {
            const failures = (await logEntries(stack.logs.process)).filter(
              (line) => line.message === FAILED_ATTEMPT,
            ).length;
            return failures - failuresBefore >= 10 ? true : undefined;
          },
          {
            timeoutMs: 60_000,
            intervalMs: 500,
            what: "the worker to fail on the missing Firestore",
          },
        );
        await sleep(3_000);
        failuresDuringOutage =
          (await logEntries(stack.logs.process)).filter((line) => line.message === FAILED_ATTEMPT)
            .length - failuresBefore;
      });
    } finally {
      gate.open();
    }
    const loadReport = await running;
    // Everything accepted from the stop on, checked against the restarted emulator.
    const afterInput = {
      accepted: loadReport.accepted.filter(
        (entry) => !beforeIds.has(`${entry.tenant_id}/${entry.log_id}`),
      ),
      inDoubt: loadReport.inDoubt,
    };
    const report = await reconcileStack(stack, afterInput, tenants);
    await record(
      "Firestore emulator stopped",
      stack,
      [loadReport],
      report,
      startedAt,
      `${beforeReport?.stored ?? 0} records stored and reconciled before the stop; ` +
        `${failuresDuringOutage} failed attempts during the outage`,
    );

    expect(beforeReport && beforeReport.ok, beforeReport && formatReport(beforeReport)).to.equal(
      true,
    );
    expect(failuresDuringOutage).to.be.at.least(10);
    expect(report.accepted).to.be.greaterThan(0);
    expectExactlyOnce(report);
    expect(report.retries.retried, "documents written after failed attempts").to.be.greaterThan(0);
  });

  it("keeps a poison record in failed_logs after the last attempt, acks it, delays nothing else", async () => {
    const startedAt = Date.now();
    const marker = `poison-${RUN_ID}`;
    const maxAttempts = 8;
    const stack = await chaosStack("poison", {
      FAULT_POISON_MARKER: marker,
      MAX_DELIVERY_ATTEMPTS: String(maxAttempts),
    });
    const tenants = tenantsOf("poison", 2);
    // The poison is sent alone, so ingest packs it into a message of its own.
    const poison = await load(stack, {
      records: 1,
      tenants: [tenants[0] as string],
      concurrency: 1,
      logIdPrefix: `poison-${RUN_ID}-p`,
      textOf: () => `this record fails on every attempt: ${marker}`,
    });
    expect(poison.accepted).to.have.length(1);
    const healthy = await load(stack, {
      records: 300,
      tenants,
      concurrency: 8,
      logIdPrefix: `poison-${RUN_ID}-h`,
      seed: 7,
    });
    const report = await reconcileStack(
      stack,
      { accepted: [...poison.accepted, ...healthy.accepted] },
      tenants,
    );

    const poisonRecord = poison.accepted[0] as ExpectedRecord;
    const failedDocs = await firestore
      .collection(`tenants/${poisonRecord.tenant_id}/failed_logs`)
      .where("log_id", "==", poisonRecord.log_id)
      .get();
    expect(failedDocs.size, "the poison record's failure").to.equal(1);
    const failedDoc = failedDocs.docs[0] as QueryDocumentSnapshot;
    const messageId = failedDoc.get("message_id") as string;
    const poisonAttempts = () =>
      logEntries(stack.logs.process).then(
        (lines) =>
          lines.filter((line) => line.message_id === messageId && line.message === FAILED_ATTEMPT)
            .length,
      );
    const attemptsAtDeadLetter = await poisonAttempts();
    // Acked: a failed push would be redelivered within about a second; give it three.
    await sleep(3_000);
    const attemptsLater = await poisonAttempts();
    const healthyDocs = (
      await Promise.all(
        tenants.map((tenant) => firestore.collection(`tenants/${tenant}/processed_logs`).get()),
      )
    ).flatMap((snapshot) => snapshot.docs);
    const lastHealthy = Math.max(
      ...healthyDocs.map((doc) => (doc.get("processed_at") as { toMillis(): number }).toMillis()),
    );
    const deadLetteredAt = (failedDoc.get("failed_at") as { toMillis(): number }).toMillis();
    await record(
      "poison record",
      stack,
      [poison, healthy],
      report,
      startedAt,
      `poison failed ${attemptsAtDeadLetter} attempts and was recorded at attempt ` +
        `${failedDoc.get("delivery_attempt")} (MAX_DELIVERY_ATTEMPTS=${maxAttempts}); the last healthy record was stored ` +
        `${((deadLetteredAt - lastHealthy) / 1000).toFixed(1)} s before it`,
    );

    expectExactlyOnce(report);
    expect(report.deadLettered).to.equal(1);
    expect(report.deadLetteredByReason).to.deep.equal({ retries_exhausted: 1 });
    expect(report.stored).to.equal(healthy.accepted.length);
    expect(failedDoc.data()).to.include({
      reason: "retries_exhausted",
      tenant_id: poisonRecord.tenant_id,
      delivery_attempt: maxAttempts,
    });
    expect(attemptsAtDeadLetter).to.equal(maxAttempts - 1);
    expect(attemptsLater, "no redelivery after the poison was recorded").to.equal(
      attemptsAtDeadLetter,
    );
    // Nothing else waited for it: every healthy record was stored at its first attempt, and
    // before the poison's retries ran out.
    expect(healthyDocs.every((doc) => doc.get("delivery_attempt") === 1)).to.equal(true);
    expect(lastHealthy).to.be.below(deadLetteredAt);
  });

  it("loses nothing accepted when ingest and worker get SIGTERM under load", async () => {
    const startedAt = Date.now();
    const stack = await chaosStack("sigterm", { SIMULATED_WORK_MS_PER_CHAR: "0.05" });
    const tenants = tenantsOf("sigterm", 3);
    const records = 600;
    const tracker = progress(records);
    const running = load(stack, {
      records,
      tenants,
      concurrency: 16,
      ratePerSecond: 60,
      // A client that sends its own log ids retries a request that got no definite answer.
      retries: 3,
      retryDelayMs: 1_000,
      logIdPrefix: `sigterm-${RUN_ID}`,
      seed: 8,
      onOutcome: tracker.onOutcome,
    });
    // SIGTERM, then a new instance, as Cloud Run replaces an instance it scales in or moves.
    const signals: string[] = [];
    for (const [fraction, target] of [
      [0.2, "ingest"],
      [0.4, "worker"],
      [0.6, "ingest"],
      [0.8, "worker"],
    ] as const) {
      await tracker.reached(fraction);
      await (target === "ingest" ? stack.restartIngest() : stack.restartWorker());
      signals.push(target);
    }
    const loadReport = await running;
    const report = await reconcileStack(stack, loadReport, tenants);
    const cut = loadReport.outcomes.filter((outcome) => outcome.verdict === "in_doubt").length;
    const refused = loadReport.outcomes.filter(
      (outcome) => outcome.error === "ECONNREFUSED",
    ).length;
    await record(
      "SIGTERM to ingest and worker",
      stack,
      [loadReport],
      report,
      startedAt,
      `SIGTERM to ${signals.join(", ")}; ${cut} requests cut without a definite answer and ` +
        `${refused} refused while ingest restarted, retried by the client`,
    );

    expectExactlyOnce(report);
    expect(loadReport.accepted.length).to.be.at.least(records * 0.9);
    expect((await stack.readLog("ingest")).match(/Serving function/g)).to.have.length(3);
  });

  const BATCH_LINES = ["batch line one", "batch line two, call +44 20 7946 0958", "line three"];

  /** An NDJSON batch without log ids, under one Idempotency-Key (open demo mode: tenant per line). */
  function postBatch(stack: TestStack, tenant: string): Promise<Response> {
    return fetch(stack.ingestUrl, {
      method: "POST",
      headers: {
        "content-type": "application/x-ndjson",
        "idempotency-key": `"chaos-batch-${RUN_ID}"`,
      },
      body: BATCH_LINES.map((text) => JSON.stringify({ tenant_id: tenant, text })).join("\n"),
    });
  }

  /** Loads of clients that follow the README's retry advice, by log id and by Idempotency-Key. */
  function adviceFollowingLoads(
    stack: TestStack,
    options: Omit<LoadOptions, "url" | "logIdPrefix" | "seed" | "records">,
    scenario: string,
    records: number,
  ): Promise<LoadReport>[] {
    const retrying = { ...options, records, retries: 60 };
    return [
      load(stack, { ...retrying, logIdPrefix: `${scenario}-l-${RUN_ID}`, seed: 7 }),
      load(stack, {
        ...retrying,
        logIdPrefix: `${scenario}-k-${RUN_ID}`,
        seed: 8,
        ids: "idempotency-key",
      }),
    ];
  }

  it("tells the truth while Pub/Sub is paused: clients following the advice store each record once", async () => {
    const startedAt = Date.now();
    const stack = await chaosStack("pubsub-pause", {
      PUBLISH_TIMEOUT_MS: "1500",
      RETRY_AFTER_SECONDS: "1",
    });
    const { pubsub } = sharedEmulators().emulators;
    const tenants = tenantsOf("pubsub-pause", 3);
    const records = 300;
    const tracker = progress(records);
    const common = { tenants, concurrency: 8, ratePerSecond: 25, onOutcome: tracker.onOutcome };
    const following = adviceFollowingLoads(stack, common, "ppause", records);
    // And clients that do not retry: their 503s stay in doubt, which is no error.
    const once = load(stack, {
      ...common,
      records: 150,
      logIdPrefix: `ppause-o-${RUN_ID}`,
      seed: 9,
    });

    await tracker.reached(0.5);
    const pausedAt = Date.now();
    pubsub.pause();
    let batchInPause: Response;
    try {
      // A batch sent in the pause: 503, each line in doubt with the id a resend must keep.
      batchInPause = await postBatch(stack, tenants[0] as string);
      await sleep(15_000 - (Date.now() - pausedAt));
    } finally {
      pubsub.resume();
    }
    const resumedAt = Date.now();
    const loads = await Promise.all([...following, once]);
    expect(batchInPause.status).to.equal(503);
    const inPause = (await batchInPause.json()) as {
      in_doubt: number;
      results: { status: string; log_id: string }[];
    };
    expect(inPause.in_doubt).to.equal(BATCH_LINES.length);
    // Resent unchanged with the same Idempotency-Key once Pub/Sub is back: the same ids, 202.
    const resent = await postBatch(stack, tenants[0] as string);
    expect(resent.status).to.equal(202);
    const afterPause = (await resent.json()) as { results: { log_id: string }[] };
    expect(afterPause.results.map((result) => result.log_id)).to.deep.equal(
      inPause.results.map((result) => result.log_id),
    );
    const batchRecords = afterPause.results.map((result, index) => ({
      tenant_id: tenants[0] as string,
      log_id: result.log_id,
      text_sha256: sha256Hex(BATCH_LINES[index] as string),
    }));
    const accepted = [...loads.flatMap((run) => run.accepted), ...batchRecords];
    const inDoubt = loads.flatMap((run) => run.inDoubt);
    const report = await reconcileStack(stack, { accepted, inDoubt }, tenants);
    const answeredInPause = loads
      .flatMap((run) => run.outcomes)
      .filter((outcome) => outcome.sentAt >= pausedAt && outcome.sentAt < resumedAt);
    await record(
      "Pub/Sub emulator paused 15 s",
      stack,
      loads,
      report,
      startedAt,
      `${answeredInPause.filter((outcome) => outcome.status === 503).length} requests answered ` +
        `503 (not confirmed) in the pause; ${following.length * records} records retried by ` +
        `log id or Idempotency-Key until 202; 150 sent once`,
    );

    expect(answeredInPause.some((outcome) => outcome.status === 503)).to.equal(true);
    for (const outcome of answeredInPause.filter((item) => item.status !== 202)) {
      expect(outcome.status, JSON.stringify(outcome)).to.equal(503);
      expect(outcome.retryAfter).to.equal("1");
    }
    const [byLogId, byKey] = loads as [LoadReport, LoadReport, LoadReport];
    expect(byLogId.accepted).to.have.length(records);
    expect(byKey.accepted).to.have.length(records);
    expect(report.inDoubt, "records of the clients that did not retry").to.be.greaterThan(0);
    expectExactlyOnce(report);
    expect(stack.ingest.restarts).to.equal(0);

    // The reconcile CLI reads the run's list and counts the in-doubt records apart: exit 0. The
    // run has drained (reconciled above), so it need not wait out its quiet period again.
    const listFile = path.join(stack.logs.dir, "all-records.jsonl");
    await writeFile(listFile, toReconcileJsonl({ accepted, inDoubt }));
    const { code, stdout } = await runCli(
      "reconcile.ts",
      [
        "--accepted",
        listFile,
        "--no-wait",
        "--project",
        stack.project,
        "--firestore-host",
        stack.firestoreHost,
      ],
      120_000,
    );
    expect(code, stdout).to.equal(0);
    expect(stdout).to.match(/in doubt\s+\d+/);
    expect(stdout).to.include("RESULT: OK");
  });

  it("keeps its promises while Firestore is paused: keys answer 503 in time, the worker retries", async () => {
    const startedAt = Date.now();
    const stack = await chaosStack("firestore-pause", {
      AUTH_MODE: "api_key",
      API_KEY_CACHE_SECONDS: "1",
      AUTH_TIMEOUT_MS: "1000",
      STORE_TIMEOUT_MS: "1500",
      RETRY_AFTER_SECONDS: "1",
      SIMULATED_WORK_MS_PER_CHAR: "0.05",
    });
    const { firestore: firestoreEmulator } = sharedEmulators().emulators;
    const tenants = tenantsOf("firestore-pause", 3);
    const keys = createFirestoreApiKeys(firestore);
    const apiKeys = Object.fromEntries(
      await Promise.all(
        tenants.map(async (tenant) => [tenant, (await keys.create(tenant, "chaos")).key] as const),
      ),
    );
    const records = 300;
    const tracker = progress(records);
    const following = adviceFollowingLoads(
      stack,
      { tenants, apiKeys, concurrency: 8, ratePerSecond: 25, onOutcome: tracker.onOutcome },
      "fpause",
      records,
    );

    await tracker.reached(0.5);
    const pausedAt = Date.now();
    firestoreEmulator.pause();
    try {
      await sleep(10_000);
    } finally {
      firestoreEmulator.resume();
    }
    const resumedAt = Date.now();
    const loads = await Promise.all(following);
    const accepted = loads.flatMap((run) => run.accepted);
    const report = await reconcileStack(stack, { accepted }, tenants);
    const refusedInPause = loads
      .flatMap((run) => run.outcomes)
      .filter((outcome) => outcome.sentAt >= pausedAt && outcome.sentAt < resumedAt)
      .filter((outcome) => outcome.status === 503);
    // How long ingest took to answer (the load's latency also counts the wait for a connection).
    const slowest = Math.max(
      0,
      ...refusedInPause.map((outcome) => outcome.answeredAt - outcome.sentAt),
    );
    await record(
      "Firestore emulator paused 10 s",
      stack,
      loads,
      report,
      startedAt,
      `${refusedInPause.length} requests answered 503 (keys cannot be checked) in the pause, ` +
        `the slowest in ${slowest} ms (AUTH_TIMEOUT_MS=1000)`,
    );

    expect(refusedInPause.length, "requests whose key could not be checked").to.be.greaterThan(0);
    expect(slowest).to.be.below(5_000);
    for (const run of loads) expect(run.accepted).to.have.length(records);
    expectExactlyOnce(report);
    expect(report.stored).to.equal(2 * records);
    const attempts = await logEntries(stack.logs.process);
    expect(attempts.filter((line) => line.message === FAILED_ATTEMPT).length).to.be.greaterThan(0);
  });
});
