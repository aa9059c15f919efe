import { expect } from "chai";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { LoadGate, arrivalTimes, runLoad } from "../../../../scripts/measure/lib/load-engine";
import { summarize } from "../../../../scripts/measure/lib/stats";
import { type ExpectedRecord, sha256Hex } from "../../../../scripts/operate/lib/reconcile";

describe("load engine", () => {
  let server: http.Server;
  let url: string;
  const seen: Array<{ type: string | undefined; tenant: string | undefined; body: string }> = [];
  const answered503 = new Set<string>();

  before(async () => {
    // By log id: ending in 1, 400; in 2, 503 once then 202; in 3, a dropped connection; "slow-",
    // 202 after 100 ms; else 202.
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const type = req.headers["content-type"];
        const json = type?.startsWith("application/json") === true;
        const parsed = json ? (JSON.parse(body) as { log_id: string; tenant_id?: string }) : null;
        const logId = parsed?.log_id ?? String(req.headers["x-log-id"]);
        seen.push({
          type,
          tenant: parsed?.tenant_id ?? req.headers["x-tenant-id"]?.toString(),
          body,
        });
        if (logId.startsWith("slow-")) return setTimeout(() => res.writeHead(202).end("{}"), 100);
        if (logId.endsWith("3")) return req.socket.destroy();
        const retried = logId.endsWith("2") && answered503.has(logId);
        if (logId.endsWith("2")) answered503.add(logId);
        const status = logId.endsWith("1") ? 400 : logId.endsWith("2") && !retried ? 503 : 202;
        res.writeHead(status, status === 503 ? { "retry-after": "0" } : {}).end("{}");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("schedules arrivals at a constant rate and along a linear ramp", () => {
    expect(arrivalTimes([{ seconds: 1, rate: 4 }])).to.deep.equal([0, 250, 500, 750]);
    // 0 to 10/s over 2 s: 10 arrivals, the k-th when 2.5 t^2 = k; a second phase follows it.
    const ramp = arrivalTimes([
      { seconds: 2, rate: 0, rampTo: 10 },
      { seconds: 1, rate: 2 },
    ]);
    expect(ramp).to.have.length(12);
    ramp.slice(0, 10).forEach((t, k) => expect(t).to.be.closeTo(Math.sqrt(k / 2.5) * 1000, 1e-6));
    expect(ramp.slice(10)).to.deep.equal([2000, 2500]);
  });

  it("sends JSON and text records over the tenants, retries a 503, sorts them by answer", async () => {
    const report = await runLoad({
      url,
      records: 40,
      ratePerSecond: 400,
      tenants: ["t1", "t2"],
      logIdPrefix: "r",
      retries: 1,
      retryDelayMs: 10,
    });
    expect(report.records).to.equal(40);
    // Ids r-0..r-39: 4 end in 1 (400), 4 in 2 (503, then 202), 4 in 3 (dropped, twice).
    expect(report.accepted).to.have.length(32);
    expect(report.rejected).to.have.length(4);
    expect(report.inDoubt).to.have.length(4);
    expect(report.statuses).to.include({ "202": 32, "400": 4, "503": 4 });
    expect(report.requests).to.equal(48);
    expect(report.offeredPerSecond).to.be.closeTo(400, 1);
    const kinds = new Set(seen.map((request) => request.type?.split(";")[0]));
    expect(kinds).to.deep.equal(new Set(["application/json", "text/plain"]));
    expect(new Set(seen.map((request) => request.tenant))).to.deep.equal(new Set(["t1", "t2"]));
    expect(report.outcomes.find((outcome) => outcome.status === 503)?.retryAfter).to.equal("0");
    const first = report.accepted[0] as ExpectedRecord;
    const body = seen.find((request) => request.body.includes(`"log_id":"${first.log_id}"`));
    const text = body
      ? (JSON.parse(body.body) as { text: string }).text
      : (seen.find((request) => sha256Hex(request.body) === first.text_sha256)?.body ?? "");
    expect(sha256Hex(text)).to.equal(first.text_sha256);
  });

  it("counts latency from the scheduled send time, not from when a connection was free", async () => {
    // Five requests due at once on one connection to a server taking 100 ms each: a client
    // timing from its own send would see 100 ms five times (coordinated omission).
    const report = await runLoad({
      url,
      records: 5,
      tenants: ["t"],
      concurrency: 1,
      logIdPrefix: "slow-",
    });
    const service = report.outcomes.map((outcome) => outcome.answeredAt - outcome.sentAt);
    expect(Math.max(...service)).to.be.below(300);
    expect(report.latency?.max).to.be.at.least(480);
    expect(report.latency?.p50).to.be.at.least(280);
    expect(report.sendLag?.max).to.be.at.least(380);
    expect(report.maxInFlight).to.equal(5);
  });

  it("counts a refused connection as rejected, and holds requests at a closed gate", async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = await runLoad({
      url: `http://127.0.0.1:${port}/`,
      records: 2,
      tenants: ["t"],
      logIdPrefix: "x",
    });
    expect(refused.rejected).to.have.length(2);
    expect(Object.keys(refused.statuses)).to.deep.equal(["ECONNREFUSED"]);

    const gate = new LoadGate();
    gate.close();
    const run = runLoad({ url, records: 3, tenants: ["t"], logIdPrefix: "g", gate });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = seen.length;
    gate.open();
    const report = await run;
    expect(before).to.equal(seen.length - 3);
    expect(report.records).to.equal(3);
  });

  it("pauses the schedule behind a closed gate rather than send a backlog at reopening", async () => {
    const gate = new LoadGate();
    let answered = 0;
    let reopenedAt = 0;
    const report = await runLoad({
      url,
      records: 20,
      ratePerSecond: 50,
      tenants: ["t"],
      logIdPrefix: "p",
      gate,
      onOutcome: () => {
        answered += 1;
        if (answered !== 5) return;
        gate.close();
        setTimeout(() => {
          reopenedAt = Date.now();
          gate.open();
        }, 300);
      },
    });
    const afterPause = report.outcomes.filter((outcome) => outcome.sentAt >= reopenedAt);
    expect(afterPause.length).to.be.at.least(10);
    // Still 50/s after the pause: 20 ms apart, not all at once.
    const sends = afterPause.map((outcome) => outcome.sentAt).sort((a, b) => a - b);
    expect((sends.at(-1) as number) - (sends[0] as number)).to.be.at.least(
      15 * (afterPause.length - 1),
    );
  });

  it("summarises latencies through an HDR histogram", () => {
    const summary = summarize(Array.from({ length: 1000 }, (_, i) => i + 1));
    // Three significant digits: each figure within 0.1 % of the exact rank.
    const exact = { min: 1, p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 };
    for (const [name, value] of Object.entries(exact)) {
      expect(summary?.[name as keyof typeof exact], name).to.be.closeTo(value, value / 1000 + 0.1);
    }
    expect(summary?.count).to.equal(1000);
    expect(summarize([])).to.equal(undefined);
  });
});
