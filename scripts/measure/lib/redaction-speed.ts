/**
 * Redaction speed on one core: MB/s of log text through `redact`, line by line, on the load
 * payloads and on log-corpus.ts. A baseline implementation (an older redaction.ts) is timed in
 * rounds interleaved with the current one, so both medians see the same noisy machine.
 */
import path from "node:path";
import { redact } from "../../../functions/src/lib/redaction";
import { realisticLogLines } from "./log-corpus";
import { recordText } from "./payloads";
import { median } from "./stats";

type Redact = (text: string) => { readonly text: string };

export type RedactionSpeedResult = Awaited<ReturnType<typeof measureRedactionSpeed>>[number];

export async function measureRedactionSpeed(options: {
  /** A module exporting `redact(text)`, timed beside the current implementation. */
  readonly baselinePath: string | undefined;
  /** Timed rounds per implementation and corpus (after two warm-up rounds). */
  readonly rounds: number;
  readonly lines: number;
}) {
  const implementations: { name: string; redact: Redact }[] = [
    { name: "current", redact: (text) => redact(text) },
  ];
  if (options.baselinePath !== undefined) {
    const baseline = (await import(path.resolve(options.baselinePath))) as { redact?: Redact };
    if (typeof baseline.redact !== "function") {
      throw new Error(`${options.baselinePath} does not export redact(text)`);
    }
    implementations.push({ name: `baseline (${options.baselinePath})`, redact: baseline.redact });
  }
  const payloadLines = Array.from({ length: options.lines }, (_, index) =>
    recordText(index, 7).split("\n"),
  )
    .flat()
    .slice(0, options.lines);
  const corpora = {
    "load payloads, line by line": payloadLines,
    "realistic log lines (log-corpus.ts)": realisticLogLines(options.lines, 11),
  };
  return Object.entries(corpora).map(([corpus, lines]) => {
    const megabytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0) / 1e6;
    const rates = implementations.map(() => [] as number[]);
    for (let round = 0; round < options.rounds + 2; round += 1) {
      implementations.forEach((implementation, index) => {
        const started = process.hrtime.bigint();
        for (const line of lines) implementation.redact(line);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (round >= 2) rates[index]?.push(megabytes / seconds); // two warm-up rounds
      });
    }
    const measured = implementations.map(({ name }, index) => ({
      name,
      mbPerSecond: rates[index] ?? [],
      medianMbPerSecond: median(rates[index] ?? []) ?? 0,
    }));
    const [current, baseline] = measured.map((item) => item.medianMbPerSecond);
    return {
      corpus,
      lines: lines.length,
      megabytes: Math.round(megabytes * 100) / 100,
      implementations: measured,
      // Median of the current implementation over the baseline's, when there is one.
      ratio: current !== undefined && baseline ? current / baseline : undefined,
    };
  });
}

export function renderRedactionSpeed(results: readonly RedactionSpeedResult[]): string {
  const rows = results.flatMap((result) => [
    `  ${result.corpus}: ${result.lines} lines, ${result.megabytes} MB`,
    ...result.implementations.map(
      ({ name, medianMbPerSecond, mbPerSecond }) =>
        `    ${name.padEnd(60)} median ${medianMbPerSecond.toFixed(1).padStart(6)} MB/s` +
        ` (rounds: ${mbPerSecond.map((rate) => rate.toFixed(1)).join(", ")})`,
    ),
    ...(result.ratio === undefined ? [] : [`    current / baseline: ${result.ratio.toFixed(2)}`]),
  ]);
  return ["Redaction speed (one core, line by line):", ...rows].join("\n");
}
