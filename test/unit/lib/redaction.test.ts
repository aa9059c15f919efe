import { expect } from "chai";

import { redact, REDACTED } from "../../../functions/src/lib/redaction";
import type { RedactionCounts, RedactionKind } from "../../../functions/src/lib/redaction";
import {
  policyFromStored,
  type RedactionPolicy,
} from "../../../functions/src/lib/redaction-policy";

const R = REDACTED;
const NO_REDACTIONS: RedactionCounts = {
  email: 0,
  card: 0,
  ssn: 0,
  phone: 0,
  credential: 0,
  ip: 0,
};

/** [input, expected text, how many of the rule's kind were redacted (default 1)] */
type Positive = readonly [input: string, expected: string, count?: number];

interface Case {
  readonly name: string;
  readonly input: string;
  readonly expected: string;
  readonly counts: Partial<RedactionCounts>;
}

const WITH_IP = policyFromStored({ kinds: { ip: true } });

function expectRedaction(
  input: string,
  expected: string,
  counts: Partial<RedactionCounts>,
  policy?: RedactionPolicy,
): void {
  const result = redact(input, policy);
  expect(result.text).to.equal(expected);
  expect(result.counts).to.deep.equal({ ...NO_REDACTIONS, ...counts });
}

function expectUnchanged(input: string, policy?: RedactionPolicy): void {
  expectRedaction(input, input, {}, policy);
}

/** Visible in test names without flooding the reporter with 100k-char strings. */
function label(text: string): string {
  const oneLine = JSON.stringify(text);
  return oneLine.length > 70 ? `${oneLine.slice(0, 67)}...` : oneLine;
}

const rules: Partial<Record<RedactionKind, { positives: Positive[]; nearMisses: string[] }>> = {
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
      ["o'brien@example.com", R],
      ["Mail o'brien@example.com now", `Mail ${R} now`],
      ["'bob@example.com'", `'${R}'`],
      ["zoë.b@example.com", R],
      ["josé.garcía@correo.es", R],
      ["用户@例子.广告", R],
      ["user@bücher.de", R],
      ["user@xn--bcher-kva.de", R],
      ["jane@example.xn--p1ai", R],
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
      "o'@example",
      "git@github:repo.git",
      "user@host",
      "docker.io/library/node@sha256:2f1e6c0a9e8d",
      "@babel/core@7.24.0",
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
      ["6212345678901234569", R],
      ["Card: 4111 1111 1111 1111, exp 12/27", `Card: ${R}, exp 12/27`],
      ["paid with 4111-1111-1111-1111.", `paid with ${R}.`],
      ["cards 4111111111111111 4012888888881881", `cards ${R} ${R}`, 2],
      ["4111 1111 1111 1111 4012 8888 8888 1881", `${R} ${R}`, 2],
      ["2024-01-15 4111111111111111", `2024-01-15 ${R}`],
      ["qty 3 4111111111111111", `qty 3 ${R}`],
      ["4111.1111.1111.1111", R],
      ["ref-4111111111111111", `ref-${R}`],
      ["card=4111111111111111&exp=12", `card=${R}&exp=12`],
      ["5105 1051 0510 5100", R],
      ["2223 0031 2200 3222", R],
      ["6011 0009 9013 9424", R],
      ["3530 1113 3330 0000", R],
      ["371449635398431", R],
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
      // Visa prints 13, 16 or 19 digits; Amex exactly 15.
      "41111111111111113",
      "3714496353984310",
      // Issuers use major industry identifiers 2-6: epoch milliseconds, snowflake ids, counters.
      "1700000000000",
      "1234567890123456789",
      "7992739871300000",
      "9111111111111111",
      // A metric run that passes Luhn as 4-4-6-3 is not how cards are grouped.
      "7007 5002 150089 240",
      "4111 1111 1111 11111 1",
      "4111.1111-1111.1111",
      "build-2024.4111111111111111x",
      "ref_4111111111111111",
      "blk_-4111111111111111",
      "blk_38865049064139660",
      "2024-4111111111111111",
      // Groupings no issuer prints: 4-4-4-2, 4-4-5, 4-4-6-3.
      "3056 9309 0259 04",
      "4537 2179 14032",
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
      ["SSN 123 45 6789", `SSN ${R}`],
      ["ssn: 123456789", `ssn: ${R}`],
      ["Social Security Number 078 05 1120", `Social Security Number ${R}`],
      ["customer SS# 078051120 on file", `customer SS# ${R} on file`],
      ['{"ssn":"123456789"}', `{"ssn":"${R}"}`],
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
      "processed 123456789 records",
      "bytes=123456789",
      "123 45 6789 items",
      "SSN 666 12 3456",
      "SSN 123 45 67890",
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
      ["phone: 5551234567", `phone: ${R}`],
      ["Tel 07400123456", `Tel ${R}`],
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
      ["07400 123456", R],
      ["030 1234567", R],
      ["06 12 34 56 78", R],
      ["(11) 91234-5678", R],
      ["0044 20 7946 0958", R],
      ["00 49 30 1234567", R],
      ["0033 6 12 34 56 78", R],
      ["+44 2079460958", R],
      ["+55 11 91234 5678", R],
      ["+81 3-1234-5678", R],
      ["+91 98765 43210", R],
      ["Tel. 030 123 45 67", `Tel. ${R}`],
      ["mobile 0612345678", `mobile ${R}`],
      ["(202) 456-1111", R],
      ["202-456-1111", R],
      ["612 34 56 78", R],
      ["02 1234 5678", R],
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
      // Ten digits without separators are sequence numbers and counters unless a word says phone.
      "5551234567",
      "seq=2654435761",
      "offset 4294967295",
      "07400123456",
      // HDFS: date, time and thread id in a row.
      "081109 214043 2561 WARN dfs.DataNode: PacketResponder 1 for block terminating",
      "7007 5002 150089 240",
      "[1234567890] task done",
      "task [2024 0115 123456]",
      "666-12-3456",
      "123-456-7890",
      "+4420 7946 0958",
      "1 234 567 bytes",
      "+1 234",
      "0.0.0.0",
      "phone_count=5551234567",
    ],
  },
  credential: {
    positives: [
      ["https://admin:hunter2@db.example.com/x", `https://admin:${R}@db.example.com/x`],
      ["postgres://app:s3cr%40t@10.0.0.5:5432/app", `postgres://app:${R}@10.0.0.5:5432/app`],
      ["Authorization: Bearer abc.def-ghi", `Authorization: Bearer ${R}`],
      ["authorization: Basic dXNlcjpwYXNz", `authorization: Basic ${R}`],
      ['{"Authorization":"Token 1f2e3d"}', `{"Authorization":"Token ${R}"}`],
      ["curl -H 'Authorization: Bearer x1'", `curl -H 'Authorization: Bearer ${R}'`],
      ["sent Bearer 9a8b7c6d5e4f3a2b1c0d", `sent Bearer ${R}`],
      ["sent Basic YWxhZGRpbjpvcGVuc2VzYW1l", `sent Basic ${R}`],
      [
        "jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        `jwt=${R}`,
      ],
      ["key AKIAIOSFODNN7EXAMPLE used", `key ${R} used`],
      ["ASIAY34FZKBOKMUTVV7A", R],
      [
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        `aws_secret_access_key = ${R}`,
      ],
      ["key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", `key=${R}`],
      ["token ghp_16C7e42F292c6912E7710c838347Ae178B4a", `token ${R}`],
      [
        "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
        R,
      ],
      ["glpat-Abcdefghij0123456789", R],
      ["xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", R],
      [
        "hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        `hooks.slack.com/services/${R}`,
      ],
      ["password=hunter2 user=bob", `password=${R} user=bob`],
      ['{"client_secret": "a b c"}', `{"client_secret": "${R}"}`],
      ["db_password: 'p4ss'", `db_password: '${R}'`],
      [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nnext",
        `${R}\nnext`,
      ],
      ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (truncated", R],
    ],
    nearMisses: [
      "commit 3f786850e387550fdab836ed7e6dc881de23001b",
      "request_id=550e8400-e29b-41d4-a716-446655440000",
      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      'etag W/"5e8f-1a2b3c4d"',
      "https://example.com/path?q=1",
      "https://example.com:8443/path",
      "Basic authentication failed",
      "Bearer token expired",
      "password=****",
      "password=${DB_PASSWORD}",
      "password: null",
      "secret_name=db-creds",
      "ghp_short",
      "AKIA1234",
      "eyJhbGciOiJIUzI1NiJ9 alone",
      "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
      "-----BEGIN CERTIFICATE-----",
      "x-request-id: 7f9c2ba4e88f827d616045507605853e",
      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
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
        // 4111 555123 4567 passes Luhn, but no Visa number has 14 digits, and "555123 4567" is
        // not how any region writes a phone number.
        name: "a 14-digit Visa-looking run is neither a card nor a phone",
        input: "Card 4111 555123 4567 on file",
        expected: "Card 4111 555123 4567 on file",
        counts: {},
      },
      {
        name: "a card whose tail looks like a phone is counted as one card",
        input: "Card 3782 822463 10005 on file",
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

  describe("ip rule (off by default, on in the tenant's policy)", () => {
    const positives: Positive[] = [
      ["client 192.168.0.1 connected", `client ${R} connected`],
      ["203.0.113.7:8443", `${R}:8443`],
      ["fe80::1", R],
      ["2001:db8::8a2e:370:7334", R],
      ["[2001:db8::1]:443", `[${R}]:443`],
      ["::ffff:192.0.2.128", R],
      ["from 10.0.0.1 and 10.0.0.2", `from ${R} and ${R}`, 2],
    ];
    const nearMisses = [
      "v1.2.3.4.5",
      "1.2.3",
      "999.1.1.1",
      "10:30:45",
      "00:1a:2b:3c:4d:5e",
      "std::vector",
      "2024-01-15T10:30:00Z",
      "build-1.2.3.4",
    ];
    for (const [input, expected, count = 1] of positives) {
      it(`redacts ${label(input)} when the policy turns ip on`, () => {
        expectRedaction(input, expected, { ip: count }, WITH_IP);
      });
      it(`leaves ${label(input)} unchanged under the default policy`, () => {
        expectUnchanged(input);
      });
    }
    for (const input of nearMisses) {
      it(`leaves near-miss ${label(input)} unchanged with ip on`, () => {
        expectUnchanged(input, WITH_IP);
      });
    }
  });

  describe("percent-encoded PII is found decoded and redacted in its encoded form", () => {
    const cases: Case[] = [
      {
        name: "an e-mail in a query string",
        input: "GET /subscribe?email=jane.doe%40example.com&src=mail HTTP/1.1",
        expected: `GET /subscribe?email=${R}&src=mail HTTP/1.1`,
        counts: { email: 1 },
      },
      {
        name: "a phone with an encoded +",
        input: "GET /call?phone=%2B14155550132 200",
        expected: `GET /call?phone=${R} 200`,
        counts: { phone: 1 },
      },
      {
        name: "an encoded e-mail as the user of a DAV URL keeps the host",
        input: "PROPFIND https://jane.doe%40example.com@dav.example.org/files/ 207",
        expected: `PROPFIND https://${R}@dav.example.org/files/ 207`,
        counts: { email: 1 },
      },
      {
        name: "the plain and the encoded copy in one line",
        input: "user=jane@example.com path=/dav/jane%40example.com/x",
        expected: `user=${R} path=/dav/${R}/x`,
        counts: { email: 2 },
      },
      {
        name: "an encoded space inside a phone",
        input: "?tel=%2B44%2020%207946%200958",
        expected: `?tel=${R}`,
        counts: { phone: 1 },
      },
      {
        name: "lowercase escapes",
        input: "?e=bob%40example.org",
        expected: `?e=${R}`,
        counts: { email: 1 },
      },
      {
        name: "encoded text without PII is left alone",
        input: "GET /search?q=hello%20world%21&page=2 200 5120",
        expected: "GET /search?q=hello%20world%21&page=2 200 5120",
        counts: {},
      },
      {
        name: "a percent sign that is not an escape",
        input: "quota at 80% for tenant, cpu 99.5%",
        expected: "quota at 80% for tenant, cpu 99.5%",
        counts: {},
      },
    ];
    for (const { name, input, expected, counts } of cases) {
      it(name, () => {
        expectRedaction(input, expected, counts);
      });
    }
  });

  describe("real-log shapes stay intact under the default policy", () => {
    const lines = [
      "081109 214043 2561 WARN dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_-1608999687919862906 terminating",
      "081109 203615 148 INFO dfs.DataNode$PacketResponder: Received block blk_38865049064139660 of size 67108864 from /10.251.42.84",
      "2026-12-02 02:31:07,123 [pool-3-thread-7] INFO  c.e.Worker - processed 1048576 records in 2315 ms",
      "Dec  2 02:31:07 web-01 sshd[24183]: Accepted publickey for deploy from 203.0.113.9 port 50522 ssh2",
      '10.0.0.5 - - [02/Dec/2026:02:31:07 +0000] "GET /api/v2/orders/1234567890?page=3 HTTP/1.1" 200 5120 "-" "curl/8.5.0"',
      '{"ts":"2026-12-02T02:31:07.123Z","level":"info","msg":"done","req_id":"550e8400-e29b-41d4-a716-446655440000","seq":2654435761}',
      "disk.io.read_bytes 7007 5002 150089 240",
      "mem total=16777216 used=8388608 free=8388608 shared=1048576",
      "[task 1234567890] [attempt_1415252514_0001_m_000003_0] done",
      "at com.example.Service.handle(Service.java:123) ~[app-1.2.3.jar:1.2.3]",
      "    at processTicksAndRejections (node:internal/process/task_queues:95:5)",
      "commit 3f786850e387550fdab836ed7e6dc881de23001b version 10.20.3000 build 2024.01.15.1234",
      "epoch 1705312200 ms 1705312200123 ns 1705312200123456789",
      "order 4111111111111112 total $1,234.56 qty 12",
      "pid=4242 tid=140234567890 offset=4294967295 crc=3735928559",
      "temperature 21.5 C humidity 45 % pressure 1013.25 hPa",
    ];
    for (const line of lines) {
      it(`leaves ${label(line)} unchanged`, () => {
        expectUnchanged(line);
      });
    }
  });

  describe("policy", () => {
    it("a kind turned off is left in the text and counted as 0", () => {
      const noPhone = policyFromStored({ kinds: { phone: false } });
      expectRedaction(
        "call 555-0199, mail a@example.com",
        `call 555-0199, mail ${R}`,
        { email: 1 },
        noPhone,
      );
    });
    it("credentials can be turned off", () => {
      const noCredentials = policyFromStored({ kinds: { credential: false } });
      expectUnchanged("password=hunter2", noCredentials);
    });
    it("the regions decide which national formats count", () => {
      const korea = policyFromStored({ phone_regions: ["KR"] });
      expectRedaction("010-1234-5678", R, { phone: 1 }, korea);
      // International numbers are recognised whatever the regions.
      expectRedaction("+44 20 7946 0958", R, { phone: 1 }, korea);
      expectUnchanged("07400 123456", korea);
    });
    it("the default policy is the brief's behaviour", () => {
      expectRedaction("User 555-0199 accessed system", "User [REDACTED] accessed system", {
        phone: 1,
      });
    });
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
        name: "a card glued directly to letters is part of that word",
        input: "ID4111111111111111",
        expected: "ID4111111111111111",
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
        name: "a national number is grouped the way its region writes it, unless a word says phone",
        input: "030 123 45 67 / Tel. 030 123 45 67",
        expected: `030 123 45 67 / Tel. ${R}`,
        counts: { phone: 1 },
      },
      {
        name: "a national number of a region outside the policy's regions is not recognised",
        // A South Korean mobile number in national format; "+82 10-1234-5678" is recognised.
        input: "010-1234-5678",
        expected: "010-1234-5678",
        counts: {},
      },
      {
        name: "a counter key right before a number vetoes a phone, even after a context word",
        input: "phone lookups seq=030 1234567",
        expected: "phone lookups seq=030 1234567",
        counts: {},
      },
      {
        name: "a bare Bearer token needs a digit to look generated",
        input: "Bearer abcdefghijklmnopqrstuvwxyz",
        expected: "Bearer abcdefghijklmnopqrstuvwxyz",
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
      unchanged("'(1)' repeated", repeatTo("(1)")),
      unchanged("'(12) ' repeated", repeatTo("(12) ")),
      unchanged("'0 ' repeated", repeatTo("0 ")),
      unchanged("'12 34 ' repeated then a letter", `${repeatTo("12 34 ")}x`),
      unchanged("'1.1.1.1.' repeated", repeatTo("1.1.1.1.")),
      unchanged("'o'a' repeated then '@'", `${repeatTo("o'a")}@`),
      unchanged("'%4' repeated", repeatTo("%4")),
      unchanged("'%40' repeated", repeatTo("%40")),
      unchanged("'a%40' repeated", repeatTo("a%40")),
      unchanged("'eyJ.' repeated", repeatTo("eyJa.")),
      unchanged("'eyJ' repeated", repeatTo("eyJ")),
      unchanged("'://' repeated", repeatTo("a://")),
      unchanged("'a://b:' repeated", repeatTo("a://b:")),
      unchanged("'password=&' repeated", repeatTo("password=&")),
      unchanged("'Authorization:,' repeated", repeatTo("Authorization:,")),
      unchanged("'Basic ' repeated", repeatTo("Basic ")),
      unchanged("'ghp_' repeated", repeatTo("ghp_")),
      unchanged("'AKIA' repeated", repeatTo("AKIA")),
      unchanged("'a:' repeated", repeatTo("a:")),
      unchanged("'::' repeated", repeatTo("::")),
      unchanged("'SSN ' repeated", repeatTo("SSN ")),
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
        name: "PEM headers without footers: the first one takes the rest of the text",
        input: repeatTo("-----BEGIN PRIVATE KEY-----x"),
        expected: R,
        counts: { credential: 1 },
      },
      {
        name: "3,000 national phones in 100,000 characters",
        input: "tel 030 1234567, ".repeat(6_000),
        expected: `tel ${R}, `.repeat(6_000),
        counts: { phone: 6_000 },
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

    // The IP patterns run only when a tenant turns ip on.
    for (const [name, input] of [
      ["'a:' repeated, ip on", repeatTo("a:")],
      ["'::' repeated, ip on", repeatTo("::")],
      ["'1:' repeated, ip on", repeatTo("1:")],
      ["'1.1.1.1.' repeated, ip on", repeatTo("1.1.1.1.")],
      ["'ffff:' repeated, ip on", repeatTo("ffff:")],
    ] as const) {
      it(name, () => {
        expectUnchanged(input, WITH_IP);
      });
    }
  });
});
