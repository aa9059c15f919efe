/**
 * Redaction of personal data and secrets in free text: credentials, e-mail addresses, payment
 * cards, US SSNs, phone numbers and (when a tenant turns them on) IP addresses are replaced by
 * REDACTED, and each kind is counted. What is on comes from the tenant's RedactionPolicy.
 *
 * Each kind claims spans of the original text in a fixed order (credentials, percent-encoded
 * PII, e-mail, card, SSN, phone, IP); a later kind never claims a character an earlier one holds,
 * so a card is one card and not phone-shaped pieces, and digits inside an e-mail stay inside it.
 * The output is built once from the claimed spans.
 *
 * The input is untrusted and on the hot path, so every pattern is compiled once and runs in
 * linear time: quantifiers are bounded, or unambiguous (each repetition must start with a
 * character the previous one cannot consume), and a candidate can only start where a token
 * starts. Pure: no I/O, no logging.
 */
import { isIPv4, isIPv6 } from "node:net";
import { countDigits, eachMatch, findPhones, forEachInHints, hasContext, type Span } from "./phone";
import {
  DEFAULT_REDACTION_POLICY,
  type RedactionKind,
  type RedactionPolicy,
} from "./redaction-policy";

export type { RedactionKind, RedactionPolicy } from "./redaction-policy";
export type RedactionCounts = Record<RedactionKind, number>;
export const REDACTED = "[REDACTED]";

export interface RedactionResult {
  readonly text: string;
  readonly counts: RedactionCounts;
}

// Letters and digits of every script count, so "café555-0199" or "ID4111…" is one token.
const WORD_CHAR = String.raw`\p{L}\p{N}_`;

// A number glued to another token by one "-" or "." ("report-555-0199.pdf", "10.555.123.4567")
// is part of that token. A "+" before digits belongs to an international number, which the
// phone pass judges as a whole; a currency symbol makes the digits an amount.
const NUMBER_START = String.raw`(?<![${WORD_CHAR}+\p{Sc}]|[${WORD_CHAR}][-.])`;
const NUMBER_END = String.raw`(?![${WORD_CHAR}]|[-.][${WORD_CHAR}])`;

// ---------------------------------------------------------------------------------------------
// E-mail. RFC 6531 local parts (letters of any script), an apostrophe between letters
// ("o'brien"), IDN domains in Unicode or punycode. Bounded by the RFC 5321 limits (64-char local
// part, 63-char labels), which also keeps each attempt constant-time; the look-behind stops a
// match from starting inside a longer local part.
const LOCAL_CHAR = String.raw`\p{L}\p{M}\p{N}_.%+\-`;
const LABEL = String.raw`[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}\-]{0,61}[\p{L}\p{M}\p{N}])?`;
const EMAIL_PATTERN = new RegExp(
  String.raw`(?<![${LOCAL_CHAR}]|[\p{L}\p{N}]')[${LOCAL_CHAR}](?:[${LOCAL_CHAR}]|'(?=[\p{L}\p{N}])){0,63}@` +
    String.raw`(?:${LABEL}\.){1,10}(?:\p{L}[\p{L}\p{M}]{1,23}|xn--[a-z0-9\-]{2,59})` +
    String.raw`(?![\p{L}\p{M}\p{N}_\-]|\.[\p{L}\p{N}])`,
  "giu",
);

// ---------------------------------------------------------------------------------------------
// Cards. A run of digit groups joined by single spaces, dashes or dots; which part of it (if
// any) is a card is decided in code. Unlike other numbers, a card may be glued to a word by one
// dash ("ref-4111111111111111"), since references are built that way; "blk_3886..." and
// "blk_-3886..." (HDFS block ids) stay ids.
const CARD_RUN_AT = new RegExp(
  String.raw`(?:(?<![\p{L}\p{N}_+\p{Sc}.\-])|(?<=\p{L}-))\d+(?:[ \-.]\d+)*${NUMBER_END}`,
  "uy",
);
/** Thirteen card characters in a row: where CARD_RUN_AT is worth trying. */
const CARD_HINT = /(?<![\d.]|\d-)\d[\d .-]{11,}\d/g;
const CARD_MIN_DIGITS = 13;
const CARD_MAX_DIGITS = 19;
const CARD_MAX_GROUPS = 5;
/**
 * How issuers print card numbers: 4-4-4-4 (most), 4-4-4-4-3 (19 digits), 4-6-5 (Amex), 4-6-4
 * (Diners). Other groupings of 13-19 digits are metric runs, however well they pass Luhn.
 */
const CARD_GROUPINGS = new Set(["4-4-4-4", "4-4-4-4-3", "4-6-5", "4-6-4"]);

// ---------------------------------------------------------------------------------------------
// SSN: the dashed form stands alone; spaced or unseparated, only after a word that says so.
const SSN_PATTERN = new RegExp(
  String.raw`${NUMBER_START}(?!000|666|9)\d{3}([- ]?)(?!00)\d{2}\1(?!0000)\d{4}${NUMBER_END}`,
  "gu",
);
const SSN_CONTEXT = /(?:\bssn|\bss#|\bss no|social security|\bsoc\.? ?sec|\bssa\b)/i;

// The brief's 7-digit local form, 555-0199: a dash is required.
const LOCAL_PHONE_PATTERN = new RegExp(String.raw`${NUMBER_START}\d{3}-\d{4}${NUMBER_END}`, "gu");

// ---------------------------------------------------------------------------------------------
// Credentials, by their documented formats, so hashes, UUIDs and request ids never match.

const TOKEN_HINT = /A[A-Z]{2}A|AIza|gh[pousr]_|github_pat_|gl[a-z]{2,6}-|xox|xapp-|hooks\.slack/;
/** Words before a secret value: Authorization, Bearer, Basic, password, secret, api_key ... */
const SECRET_WORD_HINT = /authoriz|bearer|basic|pass|pwd|secret|api.?key|token|private/i;

/** The password of `scheme://user:password@host`; the user part is left to the e-mail rule. */
const URL_PASSWORD_PATTERN =
  /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/[^\s/?#@:]{0,256}:([^\s/?#@]{1,256})@/dg;
/** `Authorization: Bearer <v>`, `Proxy-Authorization: Basic <v>`, `"authorization":"<v>"`. */
const AUTHORIZATION_PATTERN =
  /(?<![A-Za-z0-9])(?:proxy-)?authorization["']?\s{0,8}[:=]\s{0,8}["']?(?:(?:Bearer|Basic|Token|Digest|Negotiate|NTLM|AWS4-HMAC-SHA256|ApiKey)\s{1,8})?([^\s"',;]{1,4096})/dgi;
/** A bare `Bearer <token>`: the token must look generated (long, with digits). */
const BEARER_PATTERN = /(?<![A-Za-z0-9])Bearer\s{1,8}([A-Za-z0-9\-._~+/]{16,4096}=*)/dgi;
const BASIC_PATTERN =
  /(?<![A-Za-z0-9])Basic\s{1,8}([A-Za-z0-9+/]{8,4096}={0,2})(?![A-Za-z0-9+/=])/dgi;
const JWT_PATTERN =
  /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,8192}\.eyJ[A-Za-z0-9_-]{4,16384}\.[A-Za-z0-9_-]{0,8192}(?![A-Za-z0-9_-])/g;
const TOKEN_PATTERN = new RegExp(
  [
    // AWS access key ids (long-term AKIA, temporary ASIA and the other documented prefixes).
    String.raw`(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z2-7]{16}(?![A-Za-z0-9])`,
    // Google API keys.
    String.raw`(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])`,
    // GitHub tokens (classic and fine-grained).
    String.raw`(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])`,
    String.raw`(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{82,251}(?![A-Za-z0-9_])`,
    // GitLab tokens (personal, deploy, runner, CI job, trigger, feed, incoming mail, OAuth ...).
    String.raw`(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|cbt|ptt|ft|imt|soat|oas|agent|ffct|wt)-[A-Za-z0-9_-]{20,255}(?:\.[A-Za-z0-9_-]{1,64}){0,2}(?![A-Za-z0-9_-])`,
    // Slack tokens and app-level tokens, and incoming-webhook paths.
    String.raw`(?<![A-Za-z0-9_-])xox[abposre]-[A-Za-z0-9-]{10,255}(?![A-Za-z0-9_-])`,
    String.raw`(?<![A-Za-z0-9_-])xapp-\d-[A-Za-z0-9-]{10,255}(?![A-Za-z0-9_-])`,
    String.raw`(?<=hooks\.slack\.com/services/)T[A-Z0-9]{6,20}/B[A-Z0-9]{6,20}/[A-Za-z0-9]{16,64}`,
  ].join("|"),
  "g",
);
/** A value under a key that names a secret: `password=...`, `"client_secret": "..."`. */
const SECRET_VALUE_PATTERN =
  /(?<![A-Za-z0-9])(?:password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|id[_-]?token|private[_-]?key|aws_secret_access_key)["']?\s{0,8}[:=]\s{0,8}(?:"([^"\\\r\n]{1,512})"|'([^'\\\r\n]{1,512})'|([^\s"'&,;}]{1,512}))/dgi;
/** Values that are placeholders, not secrets. */
const PLACEHOLDER =
  /^(?:\*+|x+|null|none|nil|undefined|true|false|<[^>]*>|\$\{?[A-Za-z_]+\}?|\[REDACTED\])$/i;
const PRIVATE_KEY_BEGIN = /-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY( BLOCK)?-----/g;

// ---------------------------------------------------------------------------------------------
// IP addresses (only when the policy turns them on); candidates are confirmed by node:net.
const IPV4_PATTERN =
  /(?<![0-9A-Za-z_.]|[0-9A-Za-z_]-)(?:\d{1,3}\.){3}\d{1,3}(?![0-9A-Za-z_]|\.\d)/g;
const IPV6_PATTERN =
  /(?<![0-9A-Za-z_:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![0-9A-Za-z_:])/g;

// ---------------------------------------------------------------------------------------------
// Percent-encoded tokens (URLs in access logs): decoded for detection, redacted in place.
const ENCODED_TOKEN_PATTERN = /(?<![^\s"'<>])[^\s"'<>]*%[0-9A-Fa-f]{2}[^\s"'<>]*/g;
const PERCENT_ESCAPE = /%([0-9A-Fa-f]{2})/g;

const HAS_DIGIT = /\d/;

interface Claim extends Span {
  readonly kind: RedactionKind;
}

/** The spans claimed so far; a later kind may only take characters no earlier kind holds. */
class Claims {
  readonly spans: Claim[] = [];
  private covered: Uint8Array | undefined;

  constructor(private readonly length: number) {}

  isFree({ start, end }: Span): boolean {
    if (this.covered === undefined) return true;
    for (let index = start; index < end; index += 1) if (this.covered[index] === 1) return false;
    return true;
  }

  claim(span: Span, kind: RedactionKind): boolean {
    if (span.end <= span.start || !this.isFree(span)) return false;
    this.covered ??= new Uint8Array(this.length);
    this.covered.fill(1, span.start, span.end);
    this.spans.push({ ...span, kind });
    return true;
  }
}

export function redact(
  text: string,
  policy: RedactionPolicy = DEFAULT_REDACTION_POLICY,
): RedactionResult {
  const claims = new Claims(text.length);
  findAll(text, policy, claims, true);
  return render(text, claims.spans);
}

function findAll(text: string, policy: RedactionPolicy, claims: Claims, decode: boolean): void {
  const on = policy.enabled;
  const hasDigit = HAS_DIGIT.test(text);
  const hasAt = text.includes("@");
  if (on.credential) findCredentials(text, claims);
  if (decode && text.includes("%")) findEncoded(text, policy, claims);
  if (on.email && hasAt) claimEach(text, EMAIL_PATTERN, "email", claims);
  if (!hasDigit) return;
  if (on.card) findCards(text, claims);
  const hasDash = text.includes("-");
  // Without a dash, an SSN needs its context word anywhere in the text.
  if (on.ssn && (hasDash || SSN_CONTEXT.test(text))) findSsns(text, claims);
  if (on.phone) {
    findPhones(
      text,
      policy.phoneRegions,
      (span) => claims.isFree(span),
      (span) => {
        claims.claim(span, "phone");
      },
    );
    if (hasDash) claimEach(text, LOCAL_PHONE_PATTERN, "phone", claims);
  }
  if (on.ip) findIps(text, claims);
}

/** Counts of every kind, all zero. */
export function noRedactions(): RedactionCounts {
  return { email: 0, card: 0, ssn: 0, phone: 0, credential: 0, ip: 0 };
}

function render(text: string, spans: readonly Claim[]): RedactionResult {
  const counts = noRedactions();
  if (spans.length === 0) return { text, counts };
  const ordered = [...spans].sort((a, b) => a.start - b.start);
  let result = "";
  let position = 0;
  for (const span of ordered) {
    result += text.slice(position, span.start) + REDACTED;
    position = span.end;
    counts[span.kind] += 1;
  }
  return { text: result + text.slice(position), counts };
}

function claimEach(text: string, pattern: RegExp, kind: RedactionKind, claims: Claims): void {
  eachMatch(pattern, text, (match) => {
    claims.claim({ start: match.index, end: match.index + match[0].length }, kind);
  });
}

/**
 * Claims the first capture group that took part in each match (the whole match when none did).
 * The patterns carry the `d` flag, so the group's position is exact.
 */
function claimGroup(
  text: string,
  pattern: RegExp,
  claims: Claims,
  keep: (value: string) => boolean = () => true,
): void {
  eachMatch(pattern, text, (match) => {
    const groupIndex = match.findIndex((value, index) => index > 0 && value !== undefined);
    const [start, end] =
      groupIndex > 0 && match.indices?.[groupIndex] !== undefined
        ? match.indices[groupIndex]
        : [match.index, match.index + match[0].length];
    if (keep(text.slice(start, end))) claims.claim({ start, end }, "credential");
  });
}

// ---------------------------------------------------------------------------------------------

function findCredentials(text: string, claims: Claims): void {
  // Each pattern runs only where its cheap hint occurs; most lines carry none of them.
  if (text.includes("-----BEGIN")) findPrivateKeys(text, claims);
  if (TOKEN_HINT.test(text)) claimGroup(text, TOKEN_PATTERN, claims);
  if (text.includes("eyJ")) claimGroup(text, JWT_PATTERN, claims);
  if (text.includes("://")) claimGroup(text, URL_PASSWORD_PATTERN, claims, isSecretValue);
  if (SECRET_WORD_HINT.test(text)) {
    claimGroup(text, AUTHORIZATION_PATTERN, claims, isSecretValue);
    claimGroup(text, BEARER_PATTERN, claims, (value) => /\d/.test(value) && isSecretValue(value));
    claimGroup(text, BASIC_PATTERN, claims, isBasicCredentials);
    claimGroup(text, SECRET_VALUE_PATTERN, claims, isSecretValue);
  }
}

function isSecretValue(value: string): boolean {
  return !PLACEHOLDER.test(value) && !value.includes(REDACTED);
}

/** `Basic` is followed by base64 of "user:password"; prose ("Basic authentication") is not. */
function isBasicCredentials(value: string): boolean {
  if (value.length % 4 !== 0) return false;
  return Buffer.from(value, "base64").toString("latin1").includes(":");
}

/** A PEM private-key block, BEGIN to END; a block cut off by the end of the text is all taken. */
function findPrivateKeys(text: string, claims: Claims): void {
  PRIVATE_KEY_BEGIN.lastIndex = 0;
  let from = 0;
  for (;;) {
    PRIVATE_KEY_BEGIN.lastIndex = from;
    const begin = PRIVATE_KEY_BEGIN.exec(text);
    if (begin === null) return;
    const footer = `-----END ${begin[1] ?? ""}PRIVATE KEY${begin[2] ?? ""}-----`;
    const endAt = text.indexOf(footer, begin.index + begin[0].length);
    const end = endAt === -1 ? text.length : endAt + footer.length;
    claims.claim({ start: begin.index, end }, "credential");
    from = end;
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Tokens with %XX escapes are decoded (ASCII escapes only, one character each) and searched with
 * the same rules; a match is mapped back to the encoded characters it came from, so
 * `?email=jane.doe%40example.com` loses exactly `jane.doe%40example.com`.
 */
function findEncoded(text: string, policy: RedactionPolicy, claims: Claims): void {
  eachMatch(ENCODED_TOKEN_PATTERN, text, (match) => {
    const token = match[0];
    // starts[i] and ends[i]: where decoded character i came from in the token.
    const starts: number[] = [];
    const ends: number[] = [];
    let decoded = "";
    let position = 0;
    const copyUpTo = (limit: number) => {
      for (; position < limit; position += 1) {
        decoded += token[position];
        starts.push(position);
        ends.push(position + 1);
      }
    };
    eachMatch(PERCENT_ESCAPE, token, (escape) => {
      const code = Number.parseInt(escape[1] as string, 16);
      if (code >= 0x80 || code < 0x20) return;
      copyUpTo(escape.index);
      decoded += String.fromCharCode(code);
      starts.push(position);
      ends.push(position + 3);
      position += 3;
    });
    if (position === 0) return;
    copyUpTo(token.length);
    const inner = new Claims(decoded.length);
    findAll(decoded, policy, inner, false);
    for (const span of inner.spans) {
      const start = match.index + (starts[span.start] as number);
      const end = match.index + (ends[span.end - 1] as number);
      claims.claim({ start, end }, span.kind);
    }
  });
}

// ---------------------------------------------------------------------------------------------

function findCards(text: string, claims: Claims): void {
  forEachInHints(text, CARD_HINT, CARD_RUN_AT, (match) => {
    const run = match[0];
    if (run.length < CARD_MIN_DIGITS || countDigits(run) < CARD_MIN_DIGITS) return;
    // Space-joined tokens may hold several cards; a dash- or dot-joined token is one candidate.
    const tokens = run.split(" ");
    let offset = match.index;
    const starts = tokens.map((token) => {
      const start = offset;
      offset += token.length + 1;
      return start;
    });
    let index = 0;
    while (index < tokens.length) {
      const end = longestCardEndingFrom(tokens, index);
      if (end === undefined) {
        index += 1;
        continue;
      }
      const start = starts[index] as number;
      const span = { start, end: (starts[end] as number) + (tokens[end] as string).length };
      claims.claim(span, "card");
      index = end + 1;
    }
  });
}

function longestCardEndingFrom(tokens: readonly string[], start: number): number | undefined {
  const lastEnd = Math.min(tokens.length, start + CARD_MAX_GROUPS) - 1;
  for (let end = lastEnd; end >= start; end -= 1) {
    const span = tokens.slice(start, end + 1);
    let groups: string[];
    if (span.length === 1) {
      const token = span[0] ?? "";
      // One kind of separator per card: "4111-1111.1111-1111" is not how cards are written.
      if (token.includes("-") && token.includes(".")) continue;
      groups = token.split(/[-.]/);
    } else {
      if (span.some((token) => !/^\d+$/.test(token))) continue;
      groups = span;
    }
    if (isCardNumber(groups)) return end;
  }
  return undefined;
}

function isCardNumber(groups: readonly string[]): boolean {
  const digits = groups.join("");
  if (digits.length < CARD_MIN_DIGITS || digits.length > CARD_MAX_DIGITS) return false;
  if (groups.length > 1 && !CARD_GROUPINGS.has(groups.map((group) => group.length).join("-"))) {
    return false;
  }
  return hasIssuerPrefix(digits) && passesLuhn(digits);
}

/**
 * The issuer identification numbers and lengths of the card networks: Visa 4 (13, 16, 19),
 * Mastercard 51-55 and 2221-2720 (16), Amex 34/37 (15), Diners 30/36/38/39 (14, 16), JCB 35,
 * Discover, Maestro and UnionPay 5x/6x (16, 19), Mir 2200-2204. Epoch milliseconds, snowflake
 * ids (1...), counters (7..., 8..., 9...) and 17-18 digit ids are kept.
 */
function hasIssuerPrefix(digits: string): boolean {
  const first = digits.charCodeAt(0) - 48;
  const two = Number(digits.slice(0, 2));
  switch (digits.length) {
    case 13:
      return first === 4;
    case 14:
      return two === 30 || two === 36 || two === 38 || two === 39;
    case 15:
      return two === 34 || two === 37;
    case 16:
      return first >= 2 && first <= 6 && two !== 34 && two !== 37;
    case 19:
      return first === 2 || first === 4 || first === 5 || first === 6 || two === 35;
    default:
      return false;
  }
}

function passesLuhn(digits: string): boolean {
  let sum = 0;
  let doubleThis = false;
  for (let index = digits.length - 1; index >= 0; index -= 1) {
    let digit = digits.charCodeAt(index) - 48;
    if (doubleThis) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    doubleThis = !doubleThis;
  }
  return sum % 10 === 0;
}

// ---------------------------------------------------------------------------------------------

function findSsns(text: string, claims: Claims): void {
  eachMatch(SSN_PATTERN, text, (match) => {
    const dashed = match[1] === "-";
    if (!dashed && !hasContext(text, match.index, SSN_CONTEXT)) return;
    claims.claim({ start: match.index, end: match.index + match[0].length }, "ssn");
  });
}

function findIps(text: string, claims: Claims): void {
  // IPv6 first: "::ffff:192.0.2.128" is one address, not a prefix and an IPv4 address.
  if (text.includes(":")) {
    eachMatch(IPV6_PATTERN, text, (match) => {
      if (isIPv6(match[0])) {
        claims.claim({ start: match.index, end: match.index + match[0].length }, "ip");
      }
    });
  }
  if (text.includes(".")) {
    eachMatch(IPV4_PATTERN, text, (match) => {
      if (isIPv4(match[0])) {
        claims.claim({ start: match.index, end: match.index + match[0].length }, "ip");
      }
    });
  }
}
