/**
 * The project's labelled redaction cases, written by the project from public facts: the example
 * numbers of libphonenumber's metadata (for 40 regions, in international and E.164 form, and in
 * national form for the default regions), the test card numbers payment processors publish for
 * sandboxes, the documented formats of credentials (with the vendors' own documentation
 * examples where they publish one, e.g. AKIAIOSFODNN7EXAMPLE), the valid and invalid shapes of
 * e-mail validator test lists, and recognizer-style sentences ("my SSN is ...") as Presidio's
 * tests write them; every sentence is our own text.
 *
 * A positive lists the personal values that must disappear from the text; a negative is text in
 * which the kind must change nothing.
 */
import { getExampleNumber, type CountryCode } from "libphonenumber-js/max";
import examples from "libphonenumber-js/mobile/examples";
import type { RedactionKind } from "../../../functions/src/lib/redaction";
import { DEFAULT_PHONE_REGIONS } from "../../../functions/src/lib/redaction-policy";

export interface LabelledCase {
  readonly kind: RedactionKind;
  readonly text: string;
  /** Values that must be gone from the output; empty for a negative. */
  readonly values: readonly string[];
  readonly source: string;
}

const positive = (kind: RedactionKind, source: string, text: string, ...values: string[]) => ({
  kind,
  text,
  values,
  source,
});
const negative = (kind: RedactionKind, source: string, text: string) => ({
  kind,
  text,
  values: [],
  source,
});

const PHONE_REGIONS: readonly CountryCode[] = [
  "US",
  "CA",
  "GB",
  "DE",
  "FR",
  "ES",
  "IT",
  "NL",
  "BE",
  "CH",
  "AT",
  "SE",
  "NO",
  "DK",
  "FI",
  "PL",
  "PT",
  "IE",
  "GR",
  "CZ",
  "RO",
  "HU",
  "BR",
  "MX",
  "AR",
  "IN",
  "AU",
  "NZ",
  "JP",
  "KR",
  "CN",
  "SG",
  "ZA",
  "NG",
  "KE",
  "EG",
  "IL",
  "TR",
  "AE",
  "RU",
];

const TEMPLATES = [
  (value: string) => `Call me on ${value} tomorrow`,
  (value: string) => `customer phone: ${value}`,
  (value: string) => `{"msisdn":"${value}","status":"sent"}`,
];

function phoneExamples(): LabelledCase[] {
  const source = "libphonenumber example numbers";
  return PHONE_REGIONS.flatMap((region, index) => {
    const example = getExampleNumber(region, examples);
    if (example === undefined) return [];
    const template = TEMPLATES[index % TEMPLATES.length] as (value: string) => string;
    const forms = [example.formatInternational(), example.number];
    if (DEFAULT_PHONE_REGIONS.includes(region)) forms.push(example.formatNational());
    return forms.map((value) => positive("phone", source, template(value), value));
  });
}

const CARD_NUMBERS = [
  "4242424242424242",
  "4000056655665556",
  "4111111111111111",
  "4012888888881881",
  "5555555555554444",
  "2223003122003222",
  "5200828282828210",
  "5105105105105100",
  "378282246310005",
  "371449635398431",
  "6011111111111117",
  "6011000990139424",
  "3056930009020004",
  "36227206271667",
  "3566002020360505",
  "6200000000000005",
];

function grouped(card: string, separator: string): string {
  if (card.length === 15)
    return [card.slice(0, 4), card.slice(4, 10), card.slice(10)].join(separator);
  if (card.length === 14)
    return [card.slice(0, 4), card.slice(4, 10), card.slice(10)].join(separator);
  return card.match(/.{1,4}/g)?.join(separator) ?? card;
}

function cardCases(): LabelledCase[] {
  const source = "published sandbox test card numbers";
  return CARD_NUMBERS.flatMap((card, index) => {
    const forms = [card, grouped(card, " "), grouped(card, "-"), grouped(card, ".")];
    const form = forms[index % forms.length] as string;
    return [
      positive("card", source, `paid with ${form} exp 12/29`, form),
      positive("card", source, `{"pan":"${grouped(card, " ")}"}`, grouped(card, " ")),
      positive("card", source, `ref-${card} charged`, card),
    ];
  });
}

export const LABELLED_CASES: readonly LabelledCase[] = [
  // ------------------------------------------------------------------ phone
  ...phoneExamples(),
  ...[
    ["User 555-0199 accessed system", "555-0199"],
    ["call (415) 555-0132 after 5", "(415) 555-0132"],
    ["fax: 415.555.0132", "415.555.0132"],
    ["ring 07400 123456 or 030 1234567", "07400 123456", "030 1234567"],
    ["Tel. 06 12 34 56 78", "06 12 34 56 78"],
    ["WhatsApp (11) 91234-5678", "(11) 91234-5678"],
    ["intl 0044 20 7946 0958", "0044 20 7946 0958"],
    ["dial 0049 30 1234567", "0049 30 1234567"],
    ["GET /call?phone=%2B14155550132 HTTP/1.1", "%2B14155550132"],
    ["mobile: 07700900123", "07700900123"],
    ["my phone number is 212-555-0100", "212-555-0100"],
    ["+1 (202) 456-1111 is the switchboard", "+1 (202) 456-1111"],
    ["tel:+442079460958;ext=12", "+442079460958"],
    ["Kontakt: +49 (0)30 1234567", "+49 (0)30 1234567"],
  ].map(([text, ...values]) =>
    positive("phone", "recognizer-style sentences", text as string, ...(values as string[])),
  ),
  ...[
    "081109 214043 2561 WARN dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
    "seq=2654435761 ack=2654435762",
    "offset 4294967295 bytes",
    "disk.io 7007 5002 150089 240",
    "[1234567890] task finished",
    "epoch 1705312200 now",
    "release 2024.01.15 build 20240115123456",
    "2026-12-02T02:31:07.123+05:30",
    "10.20.3000 and 1.2.3.4",
    "price $5551234567",
    "ID555-0199",
    "report-555-0199.pdf",
    "550e8400-e29b-41d4-a716-446655440000",
    "order 1234567 qty 12",
    "counter=0123456789",
    "pid 12345 tid 140234567890",
    "+05:30 offset",
    "3.14159265358979",
    "listening on 0.0.0.0:8080",
    "elapsed 00:12:34.567",
  ].map((text) => negative("phone", "real-log shapes", text)),

  // ------------------------------------------------------------------ card
  ...cardCases(),
  ...[
    "Order 4111111111111112 shipped",
    "span 1234567890123456789",
    "epoch_ms 1764633067123",
    "disk.io 7007 5002 150089 240",
    "blk_-1608999687919862906",
    "blk_38865049064139660",
    "id 12345678901234567890",
    "0000 0000 0000 0000",
    "41 11 11 11 11 11 11 11",
    "4111 1111-1111 1111",
    "ID4111111111111111",
    "vmstat 1 0 123456 654321 12345 1234567 0 0 12 345",
    "cpu 12345 678 91011 1213141 51617 0 1819 0 0 0",
    "1234 5678 9012 3456",
    "9999 9999 9999 9995",
  ].map((text) => negative("card", "real-log shapes and near-misses", text)),

  // ------------------------------------------------------------------ e-mail
  ...[
    ["jane.doe@example.com", "jane.doe@example.com"],
    ["reply to o'brien@example.com today", "o'brien@example.com"],
    ["zoë.müller@example.de wrote", "zoë.müller@example.de"],
    ["用户@例子.广告", "用户@例子.广告"],
    ["contact: josé@correo.españa.es", "josé@correo.españa.es"],
    ["first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"],
    ["<admin@mail.example.org>", "admin@mail.example.org"],
    ["user_name-1@example-domain.io", "user_name-1@example-domain.io"],
    ["x@example.museum", "x@example.museum"],
    ["a.b.c.d@e.f.g.example.com", "a.b.c.d@e.f.g.example.com"],
    ["ops@xn--bcher-kva.de", "ops@xn--bcher-kva.de"],
    ["?email=jane.doe%40example.com&x=1", "jane.doe%40example.com"],
    ["PROPFIND /dav/jane.doe%40example.com@dav.example.org/", "jane.doe%40example.com"],
    ["mailto:Info@Example.COM", "Info@Example.COM"],
    ["1234567890@example.com", "1234567890@example.com"],
    ["my email is bob.smith@example.net, thanks", "bob.smith@example.net"],
    ["Emails: a@example.com; b@example.org", "a@example.com", "b@example.org"],
    ['{"email":"kim@example.kr"}', "kim@example.kr"],
    ["d'artagnan@mousquetaires.fr", "d'artagnan@mousquetaires.fr"],
    ["user%relay@example.net", "user%relay@example.net"],
  ].map(([text, ...values]) =>
    positive("email", "e-mail validator test shapes", text as string, ...(values as string[])),
  ),
  ...[
    "user@localhost",
    "@example.com",
    "user@",
    "user@.com",
    "user@example",
    "a@b.c",
    "foo@bar..com",
    "x@-example.com",
    "@babel/core@7.24.0",
    "node@sha256:abcdef0123",
    "git@github:org/repo.git",
    "price 3@4.99",
    "handle @jane on chat",
    "user@@example.com",
    "deploy@host-01 ran",
  ].map((text) => negative("email", "e-mail validator invalid shapes", text)),

  // ------------------------------------------------------------------ ssn
  ...[
    ["SSN: 078-05-1120", "078-05-1120"],
    ["ssn 123-45-6789 on file", "123-45-6789"],
    ["my social security number is 219 09 9999", "219 09 9999"],
    ["SSN 123456789", "123456789"],
    ["Social Security No. 536-22-8726", "536-22-8726"],
    ['{"ssn":"432-12-3456"}', "432-12-3456"],
    ["applicant ss# 078051120", "078051120"],
    ["(665-99-0001)", "665-99-0001"],
    ["SSN#: 287-65-4321", "287-65-4321"],
    ["employee ssn=512 34 5678", "512 34 5678"],
    ["Soc. Sec. 401-22-1234 verified", "401-22-1234"],
    ["social security: 301221234", "301221234"],
    ["SSNs 123-45-6789 and 234-56-7890", "123-45-6789", "234-56-7890"],
    ["tax form SSN 078 05 1120 attached", "078 05 1120"],
  ].map(([text, ...values]) =>
    positive("ssn", "recognizer-style sentences", text as string, ...(values as string[])),
  ),
  ...[
    "processed 123456789 records",
    "123 45 6789 items",
    "000-12-3456",
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",
    "123-45-0000",
    "bytes=123456789",
    "SSN 666123456",
    "zip 12345-6789",
  ].map((text) => negative("ssn", "recognizer near-misses", text)),

  // ------------------------------------------------------------------ credential
  ...[
    ["https://admin:hunter2@db.example.com/", "hunter2"],
    ["postgres://app:s3cr3t!@10.0.0.5:5432/app", "s3cr3t!"],
    ["Authorization: Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"],
    ["Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="],
    [
      "token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    ],
    ["aws_access_key_id=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"],
    [
      "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ],
    ["maps key AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"],
    [
      "GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a",
      "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ],
    ["gitlab glpat-1a2B3c4D5e6F7g8H9i0J", "glpat-1a2B3c4D5e6F7g8H9i0J"],
    [
      "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
      "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ],
    ["password=Tr0ub4dor&3", "Tr0ub4dor"],
    ['{"password":"correct horse battery staple"}', "correct horse battery staple"],
    ["client_secret: 8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543"],
    [
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    ],
    [
      "key: -----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIBkg\\n-----END EC PRIVATE KEY-----\\n",
      "MHcCAQEEIBkg",
    ],
  ].map(([text, ...values]) =>
    positive(
      "credential",
      "documented credential formats",
      text as string,
      ...(values as string[]),
    ),
  ),
  ...[
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "request_id=550e8400-e29b-41d4-a716-446655440000",
    "x-request-id: 7f9c2ba4e88f827d616045507605853e",
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    'etag: W/"5e8f-1a2b3c4d"',
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "Basic authentication failed for realm",
    "Bearer token expired",
    "password reset requested",
    "password=****",
    "secret_name=db-creds",
    "https://example.com:8443/path?q=1",
    "-----BEGIN CERTIFICATE-----",
    "session renewed after 3600 s",
  ].map((text) => negative("credential", "hashes, ids and near-misses", text)),

  // ------------------------------------------------------------------ ip (policy: ip on)
  ...[
    ["client 192.168.0.1 connected", "192.168.0.1"],
    ["203.0.113.7:8443", "203.0.113.7"],
    ["from fe80::1%eth0", "fe80::1"],
    ["peer 2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"],
    ["[2001:db8::1]:443", "2001:db8::1"],
    ["::ffff:192.0.2.128", "::ffff:192.0.2.128"],
    ["X-Forwarded-For: 198.51.100.23, 10.0.0.1", "198.51.100.23", "10.0.0.1"],
    ["Accepted publickey for deploy from 203.0.113.9 port 50522", "203.0.113.9"],
    ['{"remote_addr":"198.51.100.7"}', "198.51.100.7"],
    ["ip=2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:0db8:0000:0000:0000:ff00:0042:8329"],
    ["loopback ::1 and 127.0.0.1", "127.0.0.1"],
    ["GET http://192.0.2.10/index.html", "192.0.2.10"],
  ].map(([text, ...values]) =>
    positive(
      "ip",
      "address formats (RFC 5737/3849 documentation ranges)",
      text as string,
      ...(values as string[]),
    ),
  ),
  ...[
    "v1.2.3.4.5",
    "version 1.2.3",
    "999.1.1.1",
    "10:30:45",
    "00:1a:2b:3c:4d:5e",
    "std::vector<int>",
    "2024-01-15T10:30:00Z",
    "build-1.2.3.4",
  ].map((text) => negative("ip", "near-misses", text)),
];
