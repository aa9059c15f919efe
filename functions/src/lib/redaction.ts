/**
 * PII redaction for free text: e-mail addresses, payment-card numbers, US SSNs and phone numbers
 * are replaced by REDACTED, and each kind is counted.
 *
 * The input is untrusted and on the hot path, so every pattern is compiled once and is built to
 * run in linear time: quantifiers are bounded, or unambiguous (each repetition must start with a
 * character the previous one cannot consume), and a candidate can only start where a token
 * starts. Pure: no I/O, no logging.
 */

export type RedactionKind = "email" | "card" | "ssn" | "phone";
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

const EMAIL_LOCAL_CHAR = "A-Za-z0-9._%+\\-";
// Bounded by the RFC 5321 limits (64-char local part, 63-char labels), which also keeps each
// attempt constant-time; the look-behind stops a match from starting inside a longer local part.
const EMAIL_PATTERN = new RegExp(
  String.raw`(?<![${WORD_CHAR}${EMAIL_LOCAL_CHAR}])[${EMAIL_LOCAL_CHAR}]{1,64}@` +
    String.raw`(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,10}[A-Za-z]{2,24}` +
    String.raw`(?![${WORD_CHAR}\-]|\.[${WORD_CHAR}])`,
  "gu",
);

// A run of digit groups joined by single spaces or dashes. Which part of it (if any) is a card is
// decided in code: the Luhn check is arithmetic, and cards can sit side by side in one run.
const DIGIT_RUN_PATTERN = new RegExp(
  String.raw`${NUMBER_START}\d+(?:[ \-]\d+)*${NUMBER_END}`,
  "gu",
);

const SSN_PATTERN = new RegExp(
  String.raw`${NUMBER_START}(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}${NUMBER_END}`,
  "gu",
);

// The capture inside a look-ahead followed by a back-reference makes the match atomic: when the
// longest candidate is glued to a word, the engine cannot retreat to a shorter prefix of it and
// redact half a token.
const INTERNATIONAL_PHONE_PATTERN = new RegExp(
  String.raw`${NUMBER_START}(?=(\+[1-9]\d{0,14}` +
    String.raw`(?:[ .\-]?\(\d{1,4}\)[ .\-]?\d{1,14}|[ .\-]\d{1,14}){0,7}))\1${NUMBER_END}`,
  "gu",
);

// Area codes start with 2-9 under the North American Numbering Plan; requiring it keeps 10-digit
// epoch timestamps (1700000000) and similar ids out.
const NORTH_AMERICAN_PHONE_PATTERN = new RegExp(
  String.raw`${NUMBER_START}(?:1[\-. ]?)?(?:\([2-9]\d{2}\)[\-. ]?|[2-9]\d{2}[\-. ]?)` +
    String.raw`\d{3}[\-. ]?\d{4}${NUMBER_END}`,
  "gu",
);

const LOCAL_PHONE_PATTERN = new RegExp(String.raw`${NUMBER_START}\d{3}-\d{4}${NUMBER_END}`, "gu");

const HAS_DIGIT = /\d/;
const SIGNED_DECIMAL = /^\+\d+\.\d+$/;
const LEADING_DIGITS = /^\+(\d+)/;

const CARD_MIN_DIGITS = 13;
const CARD_MAX_DIGITS = 19;
// 4-4-4-4-3 is the longest grouping that fits in 19 digits.
const CARD_MAX_GROUPS = 5;
// E.164 caps a number at 15 digits; below 8 the "+" form is more likely a score or an offset.
const PHONE_MIN_DIGITS = 8;
const PHONE_MAX_DIGITS = 15;
const COUNTRY_CODE_MAX_DIGITS = 3;

export function redact(text: string): RedactionResult {
  const counts: RedactionCounts = { email: 0, card: 0, ssn: 0, phone: 0 };
  let result = text;

  if (result.includes("@")) {
    result = replaceEach(result, EMAIL_PATTERN, "email", counts);
  }
  if (HAS_DIGIT.test(result)) {
    // Cards first, so a long card is counted once as a card rather than as phone-shaped pieces.
    result = result.replace(DIGIT_RUN_PATTERN, (run) => redactCardsInRun(run, counts));
    result = replaceEach(result, SSN_PATTERN, "ssn", counts);
    result = result.replace(INTERNATIONAL_PHONE_PATTERN, (candidate) =>
      redactInternationalPhone(candidate, counts),
    );
    result = replaceEach(result, NORTH_AMERICAN_PHONE_PATTERN, "phone", counts);
    result = replaceEach(result, LOCAL_PHONE_PATTERN, "phone", counts);
  }

  return { text: result, counts };
}

function replaceEach(
  text: string,
  pattern: RegExp,
  kind: RedactionKind,
  counts: RedactionCounts,
): string {
  return text.replace(pattern, () => {
    counts[kind] += 1;
    return REDACTED;
  });
}

/**
 * Redacts every card inside a run such as "4111 1111 1111 1111 4012888888881881": cards may sit
 * next to each other or next to other numbers, separated only by a space. Dash-joined digits
 * are one token and are never split; space-joined tokens are split greedily, longest card first.
 */
function redactCardsInRun(run: string, counts: RedactionCounts): string {
  const tokens = run.split(" ");
  const kept: string[] = [];
  let start = 0;
  while (start < tokens.length) {
    const end = longestCardEndingFrom(tokens, start);
    if (end === undefined) {
      kept.push(tokens[start] ?? "");
      start += 1;
    } else {
      kept.push(REDACTED);
      counts.card += 1;
      start = end + 1;
    }
  }
  return kept.join(" ");
}

function longestCardEndingFrom(tokens: readonly string[], start: number): number | undefined {
  const lastEnd = Math.min(tokens.length, start + CARD_MAX_GROUPS) - 1;
  for (let end = lastEnd; end >= start; end -= 1) {
    const span = tokens.slice(start, end + 1);
    // Mixing separators ("4111 1111-1111 1111") is not how cards are written.
    if (span.length > 1 && span.some((token) => token.includes("-"))) continue;
    const groups = span.length === 1 ? (span[0] ?? "").split("-") : span;
    if (isCardNumber(groups)) return end;
  }
  return undefined;
}

function isCardNumber(groups: readonly string[]): boolean {
  const totalDigits = groups.reduce((sum, group) => sum + group.length, 0);
  if (totalDigits < CARD_MIN_DIGITS || totalDigits > CARD_MAX_DIGITS) return false;
  if (!hasCardGrouping(groups.map((group) => group.length))) return false;
  const digits = groups.join("");
  // No issuer uses major industry identifier 0, and "0000 0000 0000 0000" passes Luhn.
  return !digits.startsWith("0") && passesLuhn(digits);
}

/** Issuers print 4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3 and similar: a 4-digit head, then 3-7. */
function hasCardGrouping(groupLengths: readonly number[]): boolean {
  if (groupLengths.length === 1) return true;
  return groupLengths.every((length, index) => {
    if (index === 0) return length === 4;
    if (index === groupLengths.length - 1) return length >= 3 && length <= 7;
    return length >= 4 && length <= 6;
  });
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

/**
 * The pattern takes every digit group after the "+"; this keeps the longest space-delimited
 * prefix that fits E.164: in "+44 20 7946 0958 1234" the phone is redacted and "1234" is kept.
 */
function redactInternationalPhone(candidate: string, counts: RedactionCounts): string {
  const pieces = candidate.split(" ");
  let digitCount = 0;
  let phonePieces = 0;
  for (const [index, piece] of pieces.entries()) {
    digitCount += countDigits(piece);
    if (digitCount > PHONE_MAX_DIGITS) break;
    if (digitCount >= PHONE_MIN_DIGITS) phonePieces = index + 1;
  }
  if (phonePieces === 0) return candidate;

  const phone = pieces.slice(0, phonePieces).join(" ");
  if (!looksLikeInternationalPhone(phone)) return candidate;
  counts.phone += 1;
  return [REDACTED, ...pieces.slice(phonePieces)].join(" ");
}

function looksLikeInternationalPhone(phone: string): boolean {
  // "+3.14159265" is a signed decimal, not a number in dotted notation.
  if (SIGNED_DECIMAL.test(phone)) return false;
  // A grouped number opens with a 1-3 digit country code; "+2024-01-15" is a signed date.
  const leadingDigits = LEADING_DIGITS.exec(phone)?.[1] ?? "";
  const isGrouped = leadingDigits.length + 1 < phone.length;
  return !isGrouped || leadingDigits.length <= COUNTRY_CODE_MAX_DIGITS;
}

function countDigits(text: string): number {
  let count = 0;
  for (const char of text) {
    if (char >= "0" && char <= "9") count += 1;
  }
  return count;
}
