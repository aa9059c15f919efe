/**
 * CPU and memory of the stack's processes (pidusage), and of the machine: its busy cores and its
 * CPU pressure, the share of time some task waited for a core (Linux PSI): CPU queueing.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import pidusage from "pidusage";

export interface ProcSample {
  /** ms since the sampler's origin. */
  readonly t: number;
  /** Busy cores of the whole machine since the previous sample (2 = both of 2 cores). */
  readonly machine: number | undefined;
  /** Share of the time since the previous sample that some task waited for a core (0-1). */
  readonly cpuPressure: number | undefined;
  /** Per process: cores busy since the previous sample (1 = one core), cumulative CPU ms, RSS. */
  readonly cpu: Readonly<Record<string, number>>;
  readonly cpuMs: Readonly<Record<string, number>>;
  readonly rss: Readonly<Record<string, number>>;
}

export type ProcTotals = ReturnType<ProcSampler["totals"]>[number];

function machineBusyMs(): number {
  return os
    .cpus()
    .reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
}

/** Cumulative µs some task waited for CPU, or undefined where PSI is not available. */
function cpuPressureUs(): number | undefined {
  try {
    const some = /^some .*total=(\d+)/m.exec(fs.readFileSync("/proc/pressure/cpu", "utf8"));
    return some ? Number(some[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The JVM of an emulator: its launcher may start java as a child in its process group. */
export function jvmOfGroup(leaderPid: number | undefined): number | undefined {
  if (leaderPid === undefined) return undefined;
  const found = spawnSync("pgrep", ["-g", String(leaderPid), "-x", "java"], { encoding: "utf8" });
  return Number(found.stdout.split("\n")[0]) || leaderPid;
}

const mean = (values: readonly number[]) =>
  values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : 0;

/** Samples named processes; pids are resolved on every tick, so a restarted one is followed. */
export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private previous: { at: number; busyMs: number; pressureUs: number | undefined } | undefined;
  private readonly last = new Map<string, { pid: number; at: number; cpuMs: number }>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(
    private readonly targets: Readonly<Record<string, () => number | undefined>>,
    private readonly origin: number = Date.now(),
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    // A tick that takes longer than the interval (a starved machine) skips the next one.
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
    pidusage.clear();
  }

  private async tick(): Promise<void> {
    const named = Object.entries(this.targets).flatMap(([name, resolve]) => {
      const pid = resolve();
      return pid === undefined ? [] : [{ name, pid }];
    });
    const stats = await Promise.allSettled(named.map(({ pid }) => pidusage(pid)));
    const at = Date.now();
    const cpu: Record<string, number> = {};
    const cpuMs: Record<string, number> = {};
    const rss: Record<string, number> = {};
    named.forEach(({ name, pid }, index) => {
      const stat = stats[index];
      if (stat?.status !== "fulfilled") return;
      const previous = this.last.get(name);
      if (previous?.pid === pid)
        cpu[name] = (stat.value.ctime - previous.cpuMs) / (at - previous.at);
      cpuMs[name] = stat.value.ctime;
      rss[name] = stat.value.memory;
      this.last.set(name, { pid, at, cpuMs: stat.value.ctime });
    });
    const now = { at, busyMs: machineBusyMs(), pressureUs: cpuPressureUs() };
    const before = this.previous;
    this.previous = now;
    const wallMs = before === undefined ? 0 : at - before.at;
    this.samples.push({
      t: at - this.origin,
      machine: wallMs > 0 ? (now.busyMs - (before?.busyMs ?? 0)) / wallMs : undefined,
      cpuPressure:
        wallMs > 0 && now.pressureUs !== undefined && before?.pressureUs !== undefined
          ? (now.pressureUs - before.pressureUs) / 1000 / wallMs
          : undefined,
      cpu,
      cpuMs,
      rss,
    });
  }

  private window(fromMs: number, toMs: number): ProcSample[] {
    return this.samples.filter((sample) => sample.t > fromMs && sample.t <= toMs);
  }

  /** Mean busy cores of the whole machine over samples with fromMs < t <= toMs. */
  machineShare(fromMs = 0, toMs = Infinity): number {
    return mean(this.window(fromMs, toMs).flatMap((sample) => sample.machine ?? []));
  }

  /** Mean CPU pressure (0-1) over the window; undefined without PSI. */
  cpuPressure(fromMs = 0, toMs = Infinity): number | undefined {
    const shares = this.window(fromMs, toMs).flatMap((sample) => sample.cpuPressure ?? []);
    return shares.length > 0 ? mean(shares) : undefined;
  }

  /** Per-process totals over samples with fromMs < t <= toMs (sampler clock). */
  totals(fromMs = 0, toMs = Infinity) {
    const window = this.window(fromMs, toMs);
    return Object.keys(this.targets).map((name) => {
      const shares = window.flatMap((sample) => sample.cpu[name] ?? []);
      const used = window.flatMap((sample) => sample.cpuMs[name] ?? []);
      // CPU time used in the window, its mean and peak in cores, the largest RSS sampled.
      return {
        name,
        cpuMs: used.length > 1 ? (used.at(-1) as number) - (used[0] as number) : 0,
        cpuShare: mean(shares),
        peakCpuShare: Math.max(0, ...shares),
        peakRssBytes: Math.max(0, ...window.flatMap((sample) => sample.rss[name] ?? [])),
      };
    });
  }
}
