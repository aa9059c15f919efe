/**
 * The one text generator of every load: log lines of 60 to 300 characters, one in ten a 1 to 4
 * KB stack trace, one in five with PII to redact, some non-ASCII for UTF-8 to survive.
 * Deterministic for a seed, so a run can be repeated exactly.
 */

/** A tiny deterministic PRNG (mulberry32, public domain). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];
const SERVICES = ["checkout", "auth", "search", "billing", "inventory", "notifier"];
const EVENTS = [
  "request completed",
  "user signed in",
  "payment authorised",
  "cache miss for key",
  "order shipped to Zürich",
  "retrying upstream call",
  "données synchronisées",
  "session renewed ✓",
  "quota at 80 % for tenant",
  "日本語 ログ",
  "ошибка 🚀",
];
/** Snippets the redaction must find: e-mail, phone, card, SSN. */
const PII = [
  (n: number) => `contact jane.doe${n}@example.com`,
  (n: number) => `phone 555-${String(1000 + (n % 9000)).padStart(4, "0")}`,
  () => "card 4111 1111 1111 1111",
  (n: number) => `ssn 123-45-${String(1000 + (n % 9000)).padStart(4, "0")}`,
];

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)] as T;
}

function logLine(index: number, random: () => number): string {
  const parts = [
    `2026-11-28T14:${String(index % 60).padStart(2, "0")}:00.${String(index % 1000).padStart(3, "0")}Z`,
    pick(LEVELS, random),
    `[${pick(SERVICES, random)}]`,
    pick(EVENTS, random),
    `req=${(index * 2654435761) >>> 0}`,
    `latency_ms=${Math.floor(random() * 900)}`,
  ];
  if (random() < 0.2) parts.push(pick(PII, random)(index));
  const target = 60 + Math.floor(random() * 240);
  let line = parts.join(" ");
  while (line.length < target) line += ` ${pick(EVENTS, random)}`;
  return line;
}

function stackTrace(index: number, random: () => number): string {
  const lines = [logLine(index, random), "Error: upstream timed out after 3000 ms"];
  const target = 1_000 + Math.floor(random() * 3_000);
  let length = lines.join("\n").length;
  for (let depth = 0; length < target; depth += 1) {
    const frame = `    at ${pick(SERVICES, random)}.handler${depth} (/srv/app/lib/${pick(SERVICES, random)}.js:${
      10 + Math.floor(random() * 400)
    }:${1 + Math.floor(random() * 80)})`;
    lines.push(frame);
    length += frame.length + 1;
  }
  if (random() < 0.3) lines.push(`while serving ${pick(PII, random)(index)}`);
  return lines.join("\n");
}

/** A log line only (60 to 300 characters), for loads whose budgets leave no room for traces. */
export function logLineText(index: number, seed = 1): string {
  return logLine(index, seededRandom((seed * 1_000_003 + index) >>> 0));
}

/** The text of record `index` for a given seed: about 90 % log lines, 10 % long traces. */
export function recordText(index: number, seed = 1): string {
  const random = seededRandom((seed * 1_000_003 + index) >>> 0);
  return random() < 0.1 ? stackTrace(index, random) : logLine(index, random);
}
