import { expect } from "chai";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FunctionLog } from "../../../../scripts/measure/lib/log-counter";

describe("bench FunctionLog", () => {
  it("sums a diagnostics field and counts the bytes of the function's own lines only", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-log-counter-"));
    const file = path.join(dir, "process.log");
    fs.writeFileSync(file, '{"message":"before the counter started"}\n');
    let now = 0;
    const log = new FunctionLog(file, () => now, "records_stored");
    const own = '{"severity":"WARNING","message":"processing attempt failed"}\n';
    const diagnostics = (stored: number) =>
      `${JSON.stringify({ severity: "INFO", message: "diagnostics", records_stored: stored, gc_pauses: 1 })}\n`;
    now = 100;
    fs.appendFileSync(file, diagnostics(3) + own + '{"message":"half a li');
    expect(log.poll()).to.equal(3);
    now = 200;
    fs.appendFileSync(file, 'ne"}\n' + diagnostics(2));
    expect(log.poll()).to.equal(5);
    expect(log.count).to.equal(5);
    expect(log.diagnostics.map((d) => [d.t, d.fields.records_stored])).to.deep.equal([
      [100, 3],
      [200, 2],
    ]);
    const halfLine = Buffer.byteLength('{"message":"half a line"}\n');
    expect(log.between(0, 200)).to.deep.equal({
      total: 5,
      bytes: Buffer.byteLength(own) + halfLine,
      lines: 2,
    });
    expect(log.between(100, 200)).to.deep.equal({ total: 2, bytes: halfLine, lines: 1 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
