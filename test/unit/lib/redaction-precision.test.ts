/**
 * Precision on realistic log lines with nothing personal in them (scripts/lib/bench/log-corpus:
 * access logs, syslog, JSON app logs, Java and Node stack traces, metrics, HDFS, Kubernetes,
 * database and proxy lines): under the default policy, at most 0.1 % of them may change.
 */
import { expect } from "chai";
import { redact } from "../../../functions/src/lib/redaction";
import { LOG_FAMILIES, realisticLogLines } from "../../../scripts/measure/lib/log-corpus";

const LINES = 22_000;
const MAX_CHANGED_SHARE = 0.001;

describe("redaction precision on realistic log lines", function () {
  this.timeout(60_000);

  for (const seed of [1, 2]) {
    it(`changes at most ${MAX_CHANGED_SHARE * 100} % of ${LINES} clean lines (seed ${seed})`, () => {
      const lines = realisticLogLines(LINES, seed);
      const changed = lines.flatMap((line) => {
        const output = redact(line).text;
        return output === line ? [] : [`${line}\n      -> ${output}`];
      });
      const share = changed.length / lines.length;
      console.log(
        `      ${changed.length} of ${lines.length} lines changed (${(share * 100).toFixed(3)} %)`,
      );
      expect(share, `changed lines:\n${changed.join("\n")}`).to.be.at.most(MAX_CHANGED_SHARE);
    });
  }

  it("covers every family of the corpus", () => {
    expect(LOG_FAMILIES.length).to.be.at.least(10);
    const lines = realisticLogLines(LOG_FAMILIES.length * 2, 3);
    expect(new Set(lines).size).to.equal(lines.length);
  });
});
