import { expect } from "chai";

import { redact, REDACTED } from "../../../functions/src/lib/redaction";
import type { RedactionCounts, RedactionKind } from "../../../functions/src/lib/redaction";

const R = REDACTED;
const NO_REDACTIONS: RedactionCounts = { email: 0, card: 0, ssn: 0, phone: 0 };

/** [input, expected text, how many of the rule's kind were redacted (default 1)] */
type Positive = readonly [input: string, expected: string, count?: number];

interface Case {
  readonly name: string;
  readonly input: string;
  readonly expected: string;
  readonly counts: Partial<RedactionCounts>;
}

function expectRedaction(input: string, expected: string, counts: Partial<RedactionCounts>): void {
  const result = redact(input);
  expect(result.text).to.equal(expected);
  expect(result.counts).to.deep.equal({ ...NO_REDACTIONS, ...counts });
}

function expectUnchanged(input: string): void {
  expectRedaction(input, input, {});
}

/** Visible in test names without flooding the reporter with 100k-char strings. */
function label(text: string): string {
  const oneLine = JSON.stringify(text);
  return oneLine.length > 70 ? `${oneLine.slice(0, 67)}...` : oneLine;
}

const rules: Record<RedactionKind, { positives: Positive[]; nearMisses: string[] }> = {
  email: {
    positives: [
      ["jane.doe@example.com", R],
      ["Contact jane.doe@example.com today", `Contact ${R} today`],
      ["jane+newsletter@example.com", R],
      ["ops@mail.eu.example.co.uk", R],
      ["JOHN_SMITH99@Example.ORG", R],
      ["first-last@sub-domain.example.io", R],
      ["user%relay@example.net", R],
      ["<a.b@example.com>", `<${R}>`],
      ["mailto:x@y.dev, then", `mailto:${R}, then`],
      ["Ends with bob@example.com.", `Ends with ${R}.`],
      ["(bob@example.com)", `(${R})`],
      ['reply to "bob@example.com"', `reply to "${R}"`],
      ["a@example.com, b@example.org", `${R}, ${R}`, 2],
      ["5551234567@example.com", R],
      ["ops@555-0199.example.com", R],
    ],
    nearMisses: [
      "user@localhost",
      "@example.com",
      "user@",
      "user@.com",
      "user@example",
      "a@b.c",
      "2 @ 3",
      "user@@example.com",
      "foo@bar..com",
      "x@-example.com",
      "handle @jane on chat",
      "price 3@4.99",
    ],
  },
  card: {
    positives: [
      ["4111111111111111", R],
      ["4111 1111 1111 1111", R],
      ["4111-1111-1111-1111", R],
      ["5555555555554444", R],
      ["5555 5555 5555 4444", R],
      ["378282246310005", R],
      ["3782 822463 10005", R],
      ["3056 930902 5904", R],
      ["6011111111111117", R],
      ["4222222222222", R],
      ["41111111111111113", R],
      ["6212345678901234569", R],
      ["Card: 4111 1111 1111 1111, exp 12/27", `Card: ${R}, exp 12/27`],
      ["paid with 4111-1111-1111-1111.", `paid with ${R}.`],
      ["cards 4111111111111111 4012888888881881", `cards ${R} ${R}`, 2],
      ["4111 1111 1111 1111 4012 8888 8888 1881", `${R} ${R}`, 2],
      ["2024-01-15 4111111111111111", `2024-01-15 ${R}`],
      ["qty 3 4111111111111111", `qty 3 ${R}`],
    ],
    nearMisses: [
      "4111111111111112",
      "Order 1234567890123456 shipped",
      "4111 1111 1111 1112",
      "12345678901234567890",
      "411111111111",
      "0000000000000000",
      "0000 0000 0000 0000",
      "4111  1111 1111 1111",
      "4111 1111-1111 1111",
      "41 11 11 11 11 11 11 11",
      "ID4111111111111111",
      "4111111111111111abc",
      "4111111111111111.5",
      "4111_1111_1111_1111",
    ],
  },
  ssn: {
    positives: [
      ["123-45-6789", R],
      ["SSN: 078-05-1120.", `SSN: ${R}.`],
      ["(123-45-6789)", `(${R})`],
      ["665-99-0001", R],
      ["899-01-0001", R],
      ["a 123-45-6789 b 234-56-7890", `a ${R} b ${R}`, 2],
    ],
    nearMisses: [
      "123456789",
      "123 45 6789",
      "000-12-3456",
      "666-12-3456",
      "900-12-3456",
      "999-99-9999",
      "123-00-4567",
      "123-45-0000",
      "1123-45-6789",
      "123-45-67890",
      "A123-45-6789",
      "123-45-6789B",
      "12-345-6789",
    ],
  },
  phone: {
    positives: [
      ["User 555-0199 accessed system", "User [REDACTED] accessed system"],
      ["Call me at 555-0199.", `Call me at ${R}.`],
      ["(555-0199)", `(${R})`],
      ["555-123-4567", R],
      ["(555) 123-4567", R],
      ["(555)123-4567", R],
      ["555.123.4567", R],
      ["555 123 4567", R],
      ["5551234567", R],
      ["+1 555 123 4567", R],
      ["+1 (555) 123-4567", R],
      ["1-555-123-4567", R],
      ["+44 20 7946 0958", R],
      ["+44 (0)20 7946 0958", R],
      ["+49 30 123456", R],
      ["+33 1 23 45 67 89", R],
      ["+33.1.23.45.67.89", R],
      ["+4915112345678", R],
      ["tel:+442079460958;ext=1", `tel:${R};ext=1`],
      ["+44 20 7946 0958 1234", `${R} 1234`],
      ["call 555-0199 or 555-123-4567", `call ${R} or ${R}`, 2],
    ],
    nearMisses: [
      "2024-01-15",
      "15.01.2024",
      "01/15/2024",
      "10:30",
      "10:30:45",
      "1.2.3",
      "v1.2.3",
      "10.20.3000",
      "192.168.0.1",
      "192.168.100.200:8080",
      "123",
      "$1,234.56",
      "$5551234567",
      "1,234,567",
      "2024-01-15T10:30:00Z",
      "2024-01-15T10:30:00.123+05:30",
      "Mon, 15 Jan 2024 10:30:00 +0000",
      "550e8400-e29b-41d4-a716-446655440000",
      "12345678-1234-5678-1234-567812345678",
      "12345678",
      "123456789",
      "abc5551234567def",
      "ID555-0199",
      "555-01999",
      "1555-0199",
      "report-555-0199.pdf",
      "10.555.123.4567",
      "1705312200",
      "+05:30",
      "+1.2.3",
      "+3.14159265",
      "+2024-01-15",
      "x+5551234567",
    ],
  },
};

describe("redact", () => {
  for (const [kind, { positives, nearMisses }] of Object.entries(rules)) {
    describe(`${kind} rule`, () => {
      for (const [input, expected, count = 1] of positives) {
        it(`redacts ${label(input)}`, () => {
          expectRedaction(input, expected, { [kind]: count });
        });
      }
      for (const input of nearMisses) {
        it(`leaves near-miss ${label(input)} unchanged`, () => {
          expectUnchanged(input);
        });
      }
    });
  }

  describe("mixed text", () => {
    const cases: Case[] = [
      {
        name: "all four kinds in one sentence",
        input:
          "Contact jane@example.com or 555-123-4567, card 4111 1111 1111 1111, SSN 123-45-6789.",
        expected: `Contact ${R} or ${R}, card ${R}, SSN ${R}.`,
        counts: { email: 1, card: 1, ssn: 1, phone: 1 },
      },
      {
        name: "a Luhn-failing order number survives next to an e-mail",
        input: "Order 4111111111111112 shipped to bob@example.com on 2024-01-15",
        expected: `Order 4111111111111112 shipped to ${R} on 2024-01-15`,
        counts: { email: 1 },
      },
      {
        // 4111 555123 4567 passes Luhn, and "555123 4567" alone is phone-shaped.
        name: "a card whose tail looks like a phone is counted as one card",
        input: "Card 4111 555123 4567 on file",
        expected: `Card ${R} on file`,
        counts: { card: 1 },
      },
      {
        name: "a phone after a short number is still a phone",
        input: "Ext 4111 555-123-4567",
        expected: `Ext 4111 ${R}`,
        counts: { phone: 1 },
      },
      {
        name: "a card followed by a phone in one space-joined run",
        input: "4111 1111 1111 1111 555 123 4567",
        expected: `${R} ${R}`,
        counts: { card: 1, phone: 1 },
      },
      {
        name: "a log line full of near-misses",
        input: "2024-01-15T10:30:00Z User 555-0199 accessed system 192.168.0.1 (v1.2.3) $1,234.56",
        expected: `2024-01-15T10:30:00Z User ${R} accessed system 192.168.0.1 (v1.2.3) $1,234.56`,
        counts: { phone: 1 },
      },
      {
        name: "multi-line record",
        input: "name: Jane\nemail: jane@example.com\nphone: +44 20 7946 0958\nssn: 078-05-1120\n",
        expected: `name: Jane\nemail: ${R}\nphone: ${R}\nssn: ${R}\n`,
        counts: { email: 1, ssn: 1, phone: 1 },
      },
      {
        name: "non-ASCII text around PII",
        input: "Grüße an Zoë — zoe.b@example.com, Tel. +49 30 123456",
        expected: `Grüße an Zoë — ${R}, Tel. ${R}`,
        counts: { email: 1, phone: 1 },
      },
      {
        name: "text that was already redacted",
        input: `${R} and ${R} met at ${R}.`,
        expected: `${R} and ${R} met at ${R}.`,
        counts: {},
      },
      { name: "empty text", input: "", expected: "", counts: {} },
      {
        name: "text without digits or @",
        input: "nothing to see",
        expected: "nothing to see",
        counts: {},
      },
    ];

    for (const { name, input, expected, counts } of cases) {
      it(name, () => {
        expectRedaction(input, expected, counts);
      });
    }
  });

  describe("redacting its own output", () => {
    const outputs = new Set([
      ...Object.values(rules).flatMap(({ positives }) => positives.map(([, expected]) => expected)),
      `Contact ${R} or ${R}, card ${R}, SSN ${R}.`,
      `${R}${R}`,
      `[${R}]`,
    ]);
    for (const output of outputs) {
      it(`leaves ${label(output)} unchanged with zero counts`, () => {
        expectUnchanged(output);
      });
    }
  });

  describe("known limits (pinned so that changing them is a deliberate decision)", () => {
    const cases: Case[] = [
      {
        name: "an apostrophe ends the local part, so only the rest is redacted",
        input: "o'brien@example.com",
        expected: `o'${R}`,
        counts: { email: 1 },
      },
      {
        name: "a non-ASCII local part is not an e-mail",
        input: "zoë.b@example.com",
        expected: "zoë.b@example.com",
        counts: {},
      },
      {
        name: "a local part over 64 characters is not an e-mail",
        input: `${"a".repeat(65)}@example.com`,
        expected: `${"a".repeat(65)}@example.com`,
        counts: {},
      },
      {
        name: "an e-mail glued to digits is not redacted",
        input: "bob@example.com2024",
        expected: "bob@example.com2024",
        counts: {},
      },
      {
        name: "a card glued to a word by a dash is part of that token",
        input: "ref-4111111111111111",
        expected: "ref-4111111111111111",
        counts: {},
      },
      {
        name: "dots do not separate card groups",
        input: "4111.1111.1111.1111",
        expected: "4111.1111.1111.1111",
        counts: {},
      },
      {
        name: "the 7-digit local form needs its dash",
        input: "555 0199 or 555.0199",
        expected: "555 0199 or 555.0199",
        counts: {},
      },
      {
        name: "a North American area code cannot start with 0 or 1",
        input: "123-456-7890",
        expected: "123-456-7890",
        counts: {},
      },
      {
        name: "a grouped international number needs a 1-3 digit country code",
        input: "+4420 7946 0958",
        expected: "+4420 7946 0958",
        counts: {},
      },
    ];

    for (const { name, input, expected, counts } of cases) {
      it(name, () => {
        expectRedaction(input, expected, counts);
      });
    }
  });

  // No timing assertion: with exponential or quadratic backtracking these 100k-character inputs
  // would run for minutes, which mocha's per-test timeout turns into a failure.
  describe("adversarial input runs in linear time and stays correct", () => {
    const size = 100_000;
    const repeatTo = (unit: string): string => unit.repeat(Math.ceil(size / unit.length));
    const unchanged = (name: string, input: string): Case => ({
      name,
      input,
      expected: input,
      counts: {},
    });
    const cases: Case[] = [
      unchanged("100,000 digits", "1".repeat(size)),
      unchanged("100,000 digits then a letter", `${"4".repeat(size)}x`),
      unchanged("100,000 '@'", "@".repeat(size)),
      unchanged("100,000 '.'", ".".repeat(size)),
      unchanged("100,000 '-'", "-".repeat(size)),
      unchanged("'a@' repeated", repeatTo("a@")),
      unchanged("'a.a@' repeated", repeatTo("a.a@")),
      unchanged("a 100,000-letter local part", `${"a".repeat(size)}@example.com`),
      unchanged("a domain of 50,000 labels", `x@${repeatTo("a.")}com`),
      unchanged("a 100,000-character hyphenated label", `x@${repeatTo("a-")}.com`),
      unchanged("'1 ' repeated", repeatTo("1 ")),
      unchanged("'1 ' repeated then a letter", `${repeatTo("1 ")}1x`),
      unchanged("'1-' repeated then a letter", `${repeatTo("1-")}1x`),
      unchanged("'1.' repeated", repeatTo("1.")),
      unchanged("'4111 ' repeated", repeatTo("4111 ")),
      unchanged("'555 ' repeated", repeatTo("555 ")),
      unchanged("'123-45-' repeated", repeatTo("123-45-")),
      unchanged("'+1 ' repeated", repeatTo("+1 ")),
      unchanged("'+1 (' repeated", repeatTo("+1 (")),
      unchanged("100,000 '+' then digits", `${"+".repeat(size)}${"1".repeat(size)}`),
      {
        name: "PII between 100,000-character adversarial runs",
        input:
          `${"9".repeat(size)} 555-0199 ${"@".repeat(size)} jane@example.com ` +
          `${".".repeat(size)} 4111 1111 1111 1111 ${repeatTo("1 ")}123-45-6789`,
        expected:
          `${"9".repeat(size)} ${R} ${"@".repeat(size)} ${R} ` +
          `${".".repeat(size)} ${R} ${repeatTo("1 ")}${R}`,
        counts: { email: 1, card: 1, ssn: 1, phone: 1 },
      },
      {
        name: "4,000 e-mails and phones in 100,000 characters",
        input: "jane@example.com 555-0199 ".repeat(4_000),
        expected: `${R} ${R} `.repeat(4_000),
        counts: { email: 4_000, phone: 4_000 },
      },
      {
        name: "6,000 cards in one space-joined run",
        input: Array.from({ length: 6_000 }, () => "4111111111111111").join(" "),
        expected: Array.from({ length: 6_000 }, () => R).join(" "),
        counts: { card: 6_000 },
      },
    ];

    for (const { name, input, expected, counts } of cases) {
      it(name, () => {
        expect(input.length).to.be.at.least(size);
        expectRedaction(input, expected, counts);
      });
    }
  });
});
