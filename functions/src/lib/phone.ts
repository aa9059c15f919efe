/**
 * Phone numbers in free text, judged by libphonenumber-js (the metadata of Google's
 * libphonenumber). A cheap linear pattern finds phone-shaped zones; only those reach the library,
 * which finds the numbers in them for each region of the policy. A number is kept as a phone when
 * the library calls it valid and it is written the way that region writes it: its digits are the
 * library's own national (or international) format and its separators fall where that format
 * puts them, coarser allowed. `081109 214043 2561` (a date, time and thread id) is a valid German
 * number to the library, but no one writes it that way, so it stays.
 *
 * A context word before the zone (phone, tel, mobile ...) relaxes the grouping and admits
 * numbers written without any separator; a counter key (seq=, id=, bytes= ...) right before it
 * vetoes a national number.
 */
import {
  findNumbers,
  getExampleNumber,
  type CountryCode,
  type PhoneNumber,
} from "libphonenumber-js/max";
import examples from "libphonenumber-js/mobile/examples";

export interface Span {
  readonly start: number;
  readonly end: number;
}

// A zone is digit groups joined by one space, dot or dash, with "(...)" groups that need no
// separator, after an optional "+". Each repetition starts with a character the previous one
// cannot end with, so the pattern is unambiguous and runs in linear time. It is sticky: it is
// only tried where ZONE_HINT, a cheap ASCII pattern, found seven phone characters in a row.
const GROUP = String.raw`(?:\(\d{1,5}\)|\d+)`;
const ZONE_AT = new RegExp(
  String.raw`(?<![\p{L}\p{N}_+\p{Sc}]|[\p{L}\p{N}_][-.])(?:\+ ?)?${GROUP}` +
    String.raw`(?:(?:[ .\-]|(?<=\))|(?=\())${GROUP})*(?![\p{L}\p{N}_]|[-.][\p{L}\p{N}_])`,
  "uy",
);
const ZONE_HINT = /(?<![\d().-])[+(\d][\d ().-]{5,}\d\)?/g;

/**
 * Calls `found` with each match of the global `pattern` in `text`. An exec loop, not matchAll:
 * matchAll clones the pattern and allocates an iterator on every call, which on the hot path
 * costs more than the matching.
 */
export function eachMatch(
  pattern: RegExp,
  text: string,
  found: (match: RegExpExecArray) => void,
): void {
  pattern.lastIndex = 0;
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    if (match[0].length === 0) pattern.lastIndex += 1;
    found(match);
  }
}

/**
 * Calls `found` with each match of the sticky `pattern` that starts inside a match of `hint`.
 * A failed attempt costs O(1) (the look-behind refuses a start inside a token) or the length of
 * the run it tried, after which the scan moves past it, so the whole scan stays linear.
 */
export function forEachInHints(
  text: string,
  hint: RegExp,
  pattern: RegExp,
  found: (match: RegExpExecArray) => void,
): void {
  eachMatch(hint, text, (region) => {
    const end = region.index + region[0].length;
    let position = region.index;
    while (position < end) {
      pattern.lastIndex = position;
      const match = pattern.exec(text);
      if (match === null || match[0].length === 0) {
        position += 1;
        continue;
      }
      found(match);
      position = match.index + match[0].length;
    }
  });
}

/** A 10-digit North American number written 3-3-4 with one kind of separator. */
const NANP_SHAPE = /^(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}([ .-]))\d{3}(?:\1|-)\d{4}$/;
const IPV4_SHAPE = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const DATE_SHAPE = /^(?:\d{4}([-.])\d{1,2}\1\d{1,2}|\d{1,2}([-.])\d{1,2}\2\d{4})$/;
const TRUNK_ZERO = /\(0\)/g;
const ALL_DIGITS = /^\d+$/;
const LEADING_DATE = /^\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)/;
/** The brief's 7-digit local form, which redaction.ts judges on its own. */
const LOCAL_SHAPE = /^\d{3}-\d{4}$/;

const MIN_DIGITS = 7;
const MAX_DIGITS = 17;
const MAX_ZONE_CHARS = 40;
const CONTEXT_CHARS = 40;

export const PHONE_CONTEXT =
  /(?:phone|tel\b|tel\.|tél|mobile?|mob\b|cell|fax|call|sms|whatsapp|msisdn|handy|telefon|portable|celular|número|numero)/i;

/** A counter or identifier key right before a number: `seq=`, `"bytes": `, `id #`. */
export const COUNTER_KEY =
  /(?:^|[^a-z])(?:id|ids|seq|sequence|count|counter|offset|bytes|size|pid|tid|nonce|ts|timestamp|epoch|serial|port|crc|checksum|hash|duration|latency|elapsed|total|sum|order|invoice|ticket|txn|trace|span|build|version|req|request)["']?\s*[:=#]?\s*["']?$/i;

export function hasContext(text: string, start: number, words: RegExp): boolean {
  return words.test(text.slice(Math.max(0, start - CONTEXT_CHARS), start));
}

export function hasCounterKey(text: string, start: number): boolean {
  return COUNTER_KEY.test(text.slice(Math.max(0, start - 24), start));
}

/**
 * Calls `accept` with each phone number found in `text`, in order. `isFree` says whether a
 * range is still unclaimed by an earlier kind (an e-mail or card that contains the digits).
 */
export function findPhones(
  text: string,
  regions: readonly CountryCode[],
  isFree: (span: Span) => boolean,
  accept: (span: Span) => void,
): void {
  forEachInHints(text, ZONE_HINT, ZONE_AT, (match) => {
    // Fewer than seven characters cannot hold seven digits.
    if (match[0].length < MIN_DIGITS) return;
    const zone = { start: match.index, end: match.index + match[0].length };
    // Digits an earlier kind took ("4111 1111 1111 1111 555 123 4567") split the zone.
    for (const part of isFree(zone) ? [zone] : freeParts(zone, isFree)) {
      for (const span of phonesInPart(text, part, regions)) {
        if (isFree(span)) accept(span);
      }
    }
  });
}

function freeParts(zone: Span, isFree: (span: Span) => boolean): Span[] {
  const parts: Span[] = [];
  let start = -1;
  for (let index = zone.start; index <= zone.end; index += 1) {
    const free = index < zone.end && isFree({ start: index, end: index + 1 });
    if (free && start === -1) start = index;
    if (!free && start !== -1) {
      parts.push({ start, end: index });
      start = -1;
    }
  }
  return parts;
}

function phonesInPart(text: string, part: Span, regions: readonly CountryCode[]): Span[] {
  let zone = text.slice(part.start, part.end);
  const leading = zone.length - zone.trimStart().length;
  zone = zone.trim();
  const zoneStart = part.start + leading;
  if (zone.length === 0 || zone.length > MAX_ZONE_CHARS) return [];
  const digits = countDigits(zone);
  if (digits < MIN_DIGITS || digits > MAX_DIGITS) return [];
  if (IPV4_SHAPE.test(zone) || DATE_SHAPE.test(zone) || LOCAL_SHAPE.test(zone)) return [];
  const context = hasContext(text, zoneStart, PHONE_CONTEXT);
  // Digits alone could be any counter or id: only a context word makes them a phone.
  if (!context && ALL_DIGITS.test(zone)) return [];
  return phonesInZone(zone, regions, context, text, zoneStart).map((span) => ({
    start: zoneStart + span.start,
    end: zoneStart + span.end,
  }));
}

function phonesInZone(
  zone: string,
  regions: readonly CountryCode[],
  context: boolean,
  text: string,
  zoneStart: number,
): Span[] {
  const international = /^(?:\+|00)/.exec(zone);
  if (international !== null) {
    // libphonenumber reads "00" as the international prefix only for regions that dial it; the
    // number is the same whatever the region, so it is read as "+".
    const prefixLength = zone.startsWith("+") ? 0 : zone.startsWith("00 ") ? 3 : 2;
    const shift = prefixLength === 0 ? 0 : prefixLength - 1;
    const asPlus = prefixLength === 0 ? zone : `+${zone.slice(prefixLength)}`;
    // "+44 20 7946 0958 1234": a number followed by another; shorten from the end until it fits.
    let candidate = asPlus;
    for (let tries = 0; tries < 3; tries += 1) {
      const spans = internationalIn(candidate, context, shift);
      if (spans.length > 0 || !candidate.includes(" ")) return spans;
      candidate = candidate.slice(0, candidate.lastIndexOf(" "));
    }
    return [];
  }

  // The key right before a number says more than a context word further back.
  if (hasCounterKey(text, zoneStart)) return [];
  const accepted: Span[] = [];
  if (!context && !writableNationally(zone)) return [];
  const startsWithZero = /^\(?0/.test(zone);
  for (const region of regions) {
    // Each region costs a metadata search, so regions that cannot write the zone's first digit
    // that way are skipped: "07400 123456" is not tried as American, "7007 5002" not as German.
    if (writesTrunkZero(region) !== startsWithZero) continue;
    for (const { startsAt, endsAt, number } of found(zone, region)) {
      const written = zone.slice(startsAt, endsAt);
      // Part of a longer run of space-separated numbers ("081109 214043 2561", a date, time and
      // thread id) is a phone only when written with its own dashes, dots or parentheses.
      const partOfRun = startsAt > 0 || endsAt < zone.length;
      if (partOfRun && !context && !/[-.()]/.test(written)) continue;
      // Digits alone could be any counter; a context word is needed to call them a phone.
      if (!context && ALL_DIGITS.test(written)) continue;
      if (!number.isPossible()) continue;
      const asWritten =
        number.isValid() && (context || writtenAs(written, number.formatNational()));
      const northAmerican = number.countryCallingCode === "1" && NANP_SHAPE.test(written);
      if (asWritten || northAmerican) accepted.push({ start: startsAt, end: endsAt });
    }
    // The whole zone is one number: no other region can do better.
    if (accepted.some((span) => span.start === 0 && span.end === zone.length)) break;
  }
  return longestFirst(accepted);
}

/** Non-overlapping spans, preferring the longest where regions disagree. */
function longestFirst(spans: Span[]): Span[] {
  const chosen: Span[] = [];
  for (const span of [...spans].sort((a, b) => b.end - b.start - (a.end - a.start))) {
    if (chosen.every((other) => span.end <= other.start || span.start >= other.end)) {
      chosen.push(span);
    }
  }
  return chosen;
}

/** An international number at the start of `candidate` (which begins with "+"). */
function internationalIn(candidate: string, context: boolean, shift: number): Span[] {
  return found(candidate, undefined).flatMap(({ startsAt, endsAt, number }) => {
    const written = candidate.slice(startsAt, endsAt);
    const ok =
      startsAt === 0 &&
      number.isPossible() &&
      ((number.isValid() &&
        (context || writtenAs(written, number.formatInternational(), number.countryCallingCode))) ||
        (number.countryCallingCode === "1" && NANP_SHAPE.test(written)));
    // A number written with "00" is one character longer than its "+" form.
    return ok ? [{ start: 0, end: endsAt + shift }] : [];
  });
}

/**
 * Shapes no region's national format takes, refused before any metadata search: a group of one
 * digit, a group of more than five digits before the last, a leading date, fewer than nine digits
 * without a trunk 0 (national numbers without one have 9 to 11), and for zones joined by spaces
 * only, more than five groups or 13 digits.
 */
function writableNationally(zone: string): boolean {
  const groups = zone.split(/[^\d]+/).filter((group) => group.length > 0);
  if (groups.some((group, index) => group.length === 1 && !(index === 0 && group === "1"))) {
    return false;
  }
  if (groups.slice(0, -1).some((group) => group.length > 5)) return false;
  if (LEADING_DATE.test(zone)) return false;
  const digits = countDigits(zone);
  // A zone joined by spaces only can hold one national number, the whole zone (see below).
  if (!/[-.()]/.test(zone) && (groups.length > 5 || digits > 13)) return false;
  return /^\(?0/.test(zone) || digits >= 9;
}

const trunkZero = new Map<CountryCode, boolean>();
/** Whether the region's national format starts with a 0 (GB 07400 ..., not US or BR (11) ...). */
function writesTrunkZero(region: CountryCode): boolean {
  let known = trunkZero.get(region);
  if (known === undefined) {
    known = /^\(?0/.test(getExampleNumber(region, examples)?.formatNational() ?? "");
    trunkZero.set(region, known);
  }
  return known;
}

interface Found {
  readonly startsAt: number;
  readonly endsAt: number;
  readonly number: PhoneNumber;
}

function found(text: string, region: CountryCode | undefined): Found[] {
  // POSSIBLE: the matcher also returns numbers it cannot validate, which are judged above
  // (a North American number in a reserved range such as 555 is still a phone).
  const options = { v2: true as const, leniency: "POSSIBLE", defaultCountry: region };
  return findNumbers(text, options as { v2: true; defaultCountry?: CountryCode }) as Found[];
}

/**
 * True when `written` has the digits of `formatted` and puts its separators exactly where
 * `formatted` does ("030 1234567" against "030 1234567"). An international number may also be
 * written with no separator after the country code ("+442079460958", "+44 2079460958").
 */
function writtenAs(written: string, formatted: string, countryCode?: string): boolean {
  const ours = breaks(written.replace(TRUNK_ZERO, ""));
  const theirs = breaks(formatted);
  if (ours.digits !== theirs.digits) return false;
  if (ours.at.join() === theirs.at.join()) return true;
  return countryCode !== undefined && ours.at.every((position) => position === countryCode.length);
}

function breaks(text: string): { digits: string; at: number[] } {
  let digits = "";
  const at: number[] = [];
  let pendingBreak = false;
  for (const char of text) {
    if (char >= "0" && char <= "9") {
      if (pendingBreak && digits.length > 0) at.push(digits.length);
      pendingBreak = false;
      digits += char;
    } else if (char !== "+") {
      pendingBreak = true;
    }
  }
  return { digits, at };
}

export function countDigits(text: string): number {
  let count = 0;
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code >= 48 && code <= 57) count += 1;
  }
  return count;
}
