import { expect } from "chai";
import {
  createCoalescingQueue,
  encodeMessage,
  type EncodedRecord,
} from "../../../functions/src/lib/coalescer";
import type { MessagePublisher } from "../../../functions/src/lib/publisher";

function record(logId: string, text = "x"): EncodedRecord {
  return {
    tenantId: "acme",
    logId,
    json: JSON.stringify({ tenant_id: "acme", log_id: logId, text }),
  };
}

function recordingPublisher(fail = false) {
  const sent: { logIds: string[]; attributes: Record<string, string> }[] = [];
  const publisher: MessagePublisher = {
    async publish(data, attributes) {
      if (fail) throw new Error("unavailable");
      const message = JSON.parse(data.toString("utf8")) as { records: { log_id: string }[] };
      sent.push({ logIds: message.records.map((entry) => entry.log_id), attributes });
      return `m${sent.length}`;
    },
  };
  return { publisher, sent };
}

/** A publisher whose publishes stay in flight until the test acknowledges them. */
function manualPublisher() {
  const sent: { logIds: string[]; attributes: Record<string, string> }[] = [];
  const pending: Array<(messageId: string) => void> = [];
  const publisher: MessagePublisher = {
    publish(data, attributes) {
      const message = JSON.parse(data.toString("utf8")) as { records: { log_id: string }[] };
      sent.push({ logIds: message.records.map((entry) => entry.log_id), attributes });
      const messageId = `m${sent.length}`;
      return new Promise((resolve) => pending.push(() => resolve(messageId)));
    },
  };
  const acknowledge = (index: number) => pending[index]?.("");
  return { publisher, sent, acknowledge };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("createCoalescingQueue", () => {
  it("sends each record alone when the window is 0", async () => {
    const { publisher, sent } = recordingPublisher();
    const queue = createCoalescingQueue(publisher, { windowMs: 0, maxMessageBytes: 10_000 });
    const ids = await Promise.all([queue.enqueue(record("a")), queue.enqueue(record("b"))]);
    expect(ids).to.deep.equal(["m1", "m2"]);
    expect(sent[0]).to.deep.equal({
      logIds: ["a"],
      attributes: { tenant_id: "acme", log_id: "a" },
    });
  });

  it("sends a record at once when nothing is being published", async () => {
    const { publisher, sent } = recordingPublisher();
    const queue = createCoalescingQueue(publisher, { windowMs: 50, maxMessageBytes: 10_000 });
    const id = queue.enqueue(record("a"));
    expect(sent.map((message) => message.logIds)).to.deep.equal([["a"]]);
    expect(await id).to.equal("m1");
  });

  it("packs records that arrive while a publish is in flight into the next message", async () => {
    const { publisher, sent, acknowledge } = manualPublisher();
    const queue = createCoalescingQueue(publisher, { windowMs: 50, maxMessageBytes: 10_000 });
    const first = queue.enqueue(record("a"));
    const later = ["b", "c", "d"].map((id) => queue.enqueue(record(id)));
    expect(sent.map((message) => message.logIds)).to.deep.equal([["a"]]);
    acknowledge(0);
    expect(await first).to.equal("m1");
    await tick();
    expect(sent.map((message) => message.logIds)).to.deep.equal([["a"], ["b", "c", "d"]]);
    expect(sent[1]?.attributes).to.deep.equal({ records: "3" });
    acknowledge(1);
    expect(await Promise.all(later)).to.deep.equal(["m2", "m2", "m2"]);
  });

  it("sends what gathered after the window even while a publish still hangs", async () => {
    const { publisher, sent } = manualPublisher();
    const queue = createCoalescingQueue(publisher, { windowMs: 5, maxMessageBytes: 10_000 });
    void queue.enqueue(record("a"));
    void queue.enqueue(record("b"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent.map((message) => message.logIds)).to.deep.equal([["a"], ["b"]]);
  });

  it("starts a new message before one would pass the byte limit", async () => {
    const { publisher, sent } = manualPublisher();
    const big = (id: string) => record(id, "y".repeat(400));
    const queue = createCoalescingQueue(publisher, { windowMs: 5, maxMessageBytes: 1_000 });
    ["a", "b", "c", "d"].forEach((id) => void queue.enqueue(big(id)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sent.map((message) => message.logIds)).to.deep.equal([["a"], ["b", "c"], ["d"]]);
  });

  it("sends a batch at once, split at the limits", async () => {
    const { publisher, sent } = recordingPublisher();
    // A window longer than mocha's timeout: the batch settles only if it is sent at once.
    const queue = createCoalescingQueue(publisher, { windowMs: 60_000, maxMessageBytes: 100_000 });
    const records = Array.from({ length: 1001 }, (_, index) => record(`r${index}`));
    await Promise.all(queue.enqueueAll(records));
    expect(sent.length).to.be.greaterThan(1);
    expect(sent.flatMap((message) => message.logIds)).to.deep.equal(
      records.map((entry) => entry.logId),
    );
    expect(sent.map((message) => message.logIds.length)).to.deep.equal([500, 500, 1]);
  });

  it("rejects every record of a message whose publish fails", async () => {
    const { publisher } = recordingPublisher(true);
    const queue = createCoalescingQueue(publisher, { windowMs: 5, maxMessageBytes: 10_000 });
    const outcomes = await Promise.allSettled([
      queue.enqueue(record("a")),
      queue.enqueue(record("b")),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).to.deep.equal(["rejected", "rejected"]);
  });

  it("encodes exactly the PipelineMessage envelope", () => {
    const data = encodeMessage([record("a"), record("b")]);
    expect(JSON.parse(data.toString("utf8"))).to.deep.equal({
      v: 1,
      records: [
        { tenant_id: "acme", log_id: "a", text: "x" },
        { tenant_id: "acme", log_id: "b", text: "x" },
      ],
    });
  });
});
