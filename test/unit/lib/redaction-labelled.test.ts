/**
 * Recall and false-positive rate per kind on the project's labelled cases (./redaction-cases):
 * a positive counts as found when every labelled value is gone from the output; a negative
 * counts as a false positive when the output differs from the input. IP cases run under a
 * policy with ip on; the rest under the default policy.
 */
import { expect } from "chai";
import { redact, type RedactionKind } from "../../../functions/src/lib/redaction";
import {
  DEFAULT_REDACTION_POLICY,
  REDACTION_KINDS,
  policyFromStored,
} from "../../../functions/src/lib/redaction-policy";
import { LABELLED_CASES, type LabelledCase } from "./redaction-cases";

const MIN_RECALL = 0.97;
const MAX_FALSE_POSITIVE_RATE = 0.005;
const WITH_IP = policyFromStored({ kinds: { ip: true } });

interface Outcome {
  readonly testCase: LabelledCase;
  readonly output: string;
  readonly correct: boolean;
}

function judge(testCase: LabelledCase): Outcome {
  const policy = testCase.kind === "ip" ? WITH_IP : DEFAULT_REDACTION_POLICY;
  const output = redact(testCase.text, policy).text;
  const correct =
    testCase.values.length > 0
      ? testCase.values.every((value) => !output.includes(value))
      : output === testCase.text;
  return { testCase, output, correct };
}

describe("redaction on the labelled cases", () => {
  const outcomes = LABELLED_CASES.map(judge);
  const rows = REDACTION_KINDS.map((kind: RedactionKind) => {
    const mine = outcomes.filter(({ testCase }) => testCase.kind === kind);
    const positives = mine.filter(({ testCase }) => testCase.values.length > 0);
    const negatives = mine.filter(({ testCase }) => testCase.values.length === 0);
    return {
      kind,
      positives,
      negatives,
      recall: positives.filter(({ correct }) => correct).length / positives.length,
      falsePositiveRate:
        negatives.filter(({ correct }) => !correct).length / Math.max(negatives.length, 1),
    };
  });

  after(() => {
    console.log("\n    kind        recall  FP rate  positives  negatives");
    for (const row of rows) {
      console.log(
        `    ${row.kind.padEnd(10)}  ${row.recall.toFixed(3)}   ${(row.falsePositiveRate * 100).toFixed(1).padStart(4)} %  ` +
          `${String(row.positives.length).padStart(9)}  ${String(row.negatives.length).padStart(9)}`,
      );
    }
  });

  for (const row of rows) {
    it(`${row.kind}: recall >= ${MIN_RECALL} on ${row.positives.length} positives`, () => {
      const missed = row.positives
        .filter(({ correct }) => !correct)
        .map(
          ({ testCase, output }) => `${JSON.stringify(testCase.text)} -> ${JSON.stringify(output)}`,
        );
      expect(row.positives.length).to.be.above(0);
      expect(row.recall, `missed:\n${missed.join("\n")}`).to.be.at.least(MIN_RECALL);
    });
    it(`${row.kind}: false positives <= ${MAX_FALSE_POSITIVE_RATE * 100} % on ${row.negatives.length} negatives`, () => {
      const changed = row.negatives
        .filter(({ correct }) => !correct)
        .map(
          ({ testCase, output }) => `${JSON.stringify(testCase.text)} -> ${JSON.stringify(output)}`,
        );
      expect(row.negatives.length).to.be.above(0);
      expect(row.falsePositiveRate, `changed:\n${changed.join("\n")}`).to.be.at.most(
        MAX_FALSE_POSITIVE_RATE,
      );
    });
  }
});
