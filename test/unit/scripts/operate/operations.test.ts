import { expect } from "chai";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { compileValidators } from "../../../../functions/src/lib/schema";
import { namesTenant } from "../../../../scripts/operate/lib/erase";
import { deployConfigValue } from "../../../../scripts/operate/lib/operator-cli";
import {
  type DeadLetterQueue,
  deadLetterItem,
  summarise,
} from "../../../../scripts/operate/lib/replay";

const validators = compileValidators({ maxTextChars: 1000 });
const record = (logId: string) => ({
  tenant_id: "acme",
  log_id: logId,
  source: "json_upload",
  text: `text of ${logId}`,
  received_at: "2026-12-01T10:00:00.000Z",
});
const base64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64");

describe("operator commands", () => {
  describe("namesTenant (which dead letters a purge erases)", () => {
    it("finds the tenant in one record or in any record of a message", () => {
      expect(namesTenant(base64({ tenant_id: "acme", log_id: "bad id" }), "acme")).to.equal(true);
      expect(namesTenant(base64({ v: 2, records: [{}, { tenant_id: "acme" }] }), "acme")).to.equal(
        true,
      );
      expect(namesTenant(base64({ tenant_id: "acme-2" }), "acme")).to.equal(false);
    });

    it("names nobody in a payload that is not JSON", () => {
      expect(namesTenant(Buffer.from("acme").toString("base64"), "acme")).to.equal(false);
      expect(namesTenant(undefined, "acme")).to.equal(false);
    });
  });

  describe("deadLetterItem", () => {
    const queue = {} as DeadLetterQueue;
    const message = (data: string, attributes: Record<string, string> = {}) => ({
      ackId: "ack",
      messageId: "42",
      data: Buffer.from(data),
      attributes,
    });

    it("republishes a pipeline message as it was, without the attributes dead-lettering added", () => {
      const data = JSON.stringify({ v: 1, records: [record("a"), record("b")] });
      const item = deadLetterItem(
        message(data, { records: "2", CloudPubSubDeadLetterSourceDeliveryCount: "10" }),
        queue,
        validators,
      );
      expect(item.problem).to.equal(undefined);
      expect(item.records.map((r) => r.log_id)).to.deep.equal(["a", "b"]);
      expect(item.message).to.deep.equal({ data: Buffer.from(data), attributes: { records: "2" } });
    });

    it("leaves a message the worker cannot read, or with one invalid record", () => {
      const unreadable = deadLetterItem(message("not json"), queue, validators);
      const partly = deadLetterItem(
        message(
          JSON.stringify({ v: 1, records: [record("a"), { ...record("b"), source: "fax" }] }),
        ),
        queue,
        validators,
      );
      expect(unreadable.problem).to.match(/not a pipeline message/);
      expect(partly.problem).to.match(/not a pipeline message/);
    });
  });

  it("summarise counts records, one for an item whose records cannot be read", () => {
    expect(
      summarise([
        { label: "a", outcomes: ["replayed", "already_stored"] },
        { label: "b", outcomes: ["still_failing"], why: "unreadable" },
        { label: "c", outcomes: ["replayed"] },
      ]),
    ).to.deep.equal({ replayed: 2, already_stored: 1, still_failing: 1 });
  });

  it("deployConfigValue reads deploy/config.env values, quoted or not", () => {
    expect(deployConfigValue("DEAD_LETTER_SUBSCRIPTION")).to.equal("rdp-ingest-dead-letter-hold");
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ops-")), "config.env");
    fs.writeFileSync(file, "# X=no\nTOPIC='a b'\nOTHER=1\n");
    expect(deployConfigValue("TOPIC", file)).to.equal("a b");
    expect(deployConfigValue("X", file)).to.equal(undefined);
  });
});
