import { expect } from "chai";
import { gunzipSync } from "node:zlib";
import {
  OTLP_PROTOBUF,
  decodeExportLogsRequest,
  encodeExportLogsResponse,
} from "../../../../functions/src/lib/otlp";
import { BATCH_ENCODINGS, type BatchRecord } from "../../../../scripts/measure/lib/batch-encodings";
import { recordText } from "../../../../scripts/measure/lib/payloads";

const TENANT = { tenantId: "acme", apiKey: "rdp_test_key" };
const records: BatchRecord[] = Array.from({ length: 20 }, (_, n) => ({
  log_id: `batch-otlp-20261202t000000z-${n}`,
  text: recordText(n, 7),
}));
const all = new Set(records.map((_, i) => i));

describe("bench batch encodings", () => {
  it("sends NDJSON with the API key, one line a record", async () => {
    const request = await BATCH_ENCODINGS.ndjson.encode(records, TENANT);
    expect(request.path).to.equal("");
    expect(request.headers).to.deep.equal({
      "content-type": "application/x-ndjson",
      authorization: "Bearer rdp_test_key",
    });
    const lines = Buffer.from(request.body).toString("utf8").trimEnd().split("\n");
    expect(lines.map((line) => JSON.parse(line) as unknown)).to.deep.equal(records);
  });

  it("gzip NDJSON inflates to the same NDJSON body and says so in Content-Encoding", async () => {
    const plain = await BATCH_ENCODINGS.ndjson.encode(records, TENANT);
    const gzipped = await BATCH_ENCODINGS["ndjson+gzip"].encode(records, TENANT);
    expect(gzipped.headers["content-encoding"]).to.equal("gzip");
    expect(gzipped.body.byteLength).to.be.below(plain.body.byteLength);
    expect(gunzipSync(gzipped.body).equals(Buffer.from(plain.body))).to.equal(true);
  });

  it("OTLP protobuf bodies decode in ingest to the same ids (log.record.uid) and texts", async () => {
    const request = await BATCH_ENCODINGS["otlp-protobuf"].encode(records, TENANT);
    expect(request.path).to.equal("v1/logs");
    expect(request.headers["content-type"]).to.equal(OTLP_PROTOBUF);
    const decoded = decodeExportLogsRequest(request.body, OTLP_PROTOBUF, TENANT.tenantId);
    expect(decoded.rejected).to.deep.equal([]);
    expect(decoded.records.map(({ log_id, text }) => ({ log_id, text }))).to.deep.equal(records);
  });

  it("reads ingest's OTLP answers: all accepted, partial success in doubt, 503 in doubt", () => {
    const { verdict } = BATCH_ENCODINGS["otlp-protobuf"];
    const ok = encodeExportLogsResponse({ rejectedLogRecords: 0 }, OTLP_PROTOBUF);
    expect(verdict(200, ok, records.length)).to.deep.equal({
      accepted: all,
      othersInDoubt: false,
    });
    const partial = encodeExportLogsResponse(
      { rejectedLogRecords: 2, errorMessage: "2 records refused" },
      OTLP_PROTOBUF,
    );
    expect(verdict(200, partial, records.length)).to.deep.equal({
      accepted: new Set(),
      othersInDoubt: true,
    });
    expect(verdict(503, new Uint8Array(), records.length).othersInDoubt).to.equal(true);
    expect(verdict(400, new Uint8Array(), records.length).othersInDoubt).to.equal(false);
  });

  it("reads the NDJSON answer line by line: in_doubt lines, or a 5xx without an answer, are in doubt", () => {
    const { verdict } = BATCH_ENCODINGS.ndjson;
    const answer = (...statuses: string[]) =>
      Buffer.from(
        JSON.stringify({ results: statuses.map((status, i) => ({ line: i + 1, status })) }),
      );
    expect(verdict(202, answer("accepted", "rejected"), 2)).to.deep.equal({
      accepted: new Set([0]),
      othersInDoubt: false,
    });
    // A 503 lists the lines it could not confirm as in_doubt.
    expect(verdict(503, answer("in_doubt", "in_doubt"), 2)).to.deep.equal({
      accepted: new Set(),
      othersInDoubt: true,
    });
    expect(verdict(503, Buffer.from("{}"), 2)).to.deep.equal({
      accepted: new Set(),
      othersInDoubt: true,
    });
  });
});
