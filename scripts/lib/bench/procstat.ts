/**
 * CPU time and memory of the stack's processes, read from /proc (Linux only): cumulative
 * user + system time from /proc/<pid>/stat, resident memory now (VmRSS) and at its peak
 * (VmHWM) from /proc/<pid>/status. A sampler takes one reading of every watched process at a
 * fixed interval, which gives the per-process CPU share over time and at the end.
 */
import fs from "node:fs";
import { cpuShare } from "./stats";

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux Node supports. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcReading {
  /** Cumulative user + system CPU time, ms. */
  readonly cpuMs: number;
  readonly rssBytes: number;
  /** Peak resident set size of the process so far. */
  readonly hwmBytes: number;
}

/** One reading of a process, or undefined when it does not exist (any more). */
export function readProc(pid: number): ProcReading | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime) of the full line are 11 and 12 here (0-based from field 3).
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    return {
      cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND,
      rssBytes: statusKb(status, "VmRSS") * 1024,
      hwmBytes: statusKb(status, "VmHWM") * 1024,
    };
  } catch {
    return undefined;
  }
}

function statusKb(status: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) : 0;
}

interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgrp: number;
  readonly comm: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, comm, ppid: Number(fields[1]), pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/**
 * The JVM of an emulator: its launcher (a shell script for Pub/Sub) may start java as a child
 * in the same process group, so the busiest `java` of the group is taken, or the leader itself.
 */
export function jvmOfGroup(leaderPid: number | undefined): number | undefined {
  if (leaderPid === undefined) return undefined;
  const members = allPids()
    .map(procInfo)
    .filter((info): info is ProcInfo => info !== undefined && info.pgrp === leaderPid);
  const java = members.find((info) => info.comm === "java");
  return java?.pid ?? members.find((info) => info.pid === leaderPid)?.pid;
}

/**
 * A child of this process whose command line holds `marker`, e.g. the ingest function's
 * `--target=ingest`: the stack does not expose the ingest pid, and other copies of the stack
 * on this machine (someone's `npm start`) run the same command, so the parent must be us.
 */
export function childWithArgument(marker: string, parentPid = process.pid): number | undefined {
  return allPids().find((pid) => {
    const info = procInfo(pid);
    return info?.ppid === parentPid && cmdline(pid).includes(marker);
  });
}

export interface ProcSample {
  /** ms since the sampler's origin. */
  readonly t: number;
  /** Busy share of the whole machine since the previous sample (2 = both of 2 cores busy). */
  readonly machine: number | undefined;
  /** CPU share since the previous sample per process (1 = one core), RSS in bytes. */
  readonly cpu: Readonly<Record<string, number>>;
  readonly rss: Readonly<Record<string, number>>;
}

export interface ProcTotals {
  readonly name: string;
  readonly pid: number | undefined;
  /** Mean CPU share over the window asked for (1 = one core). */
  readonly cpuShare: number;
  readonly peakCpuShare: number;
  /** Largest VmRSS seen in the window's samples. */
  readonly peakRssBytes: number;
  /** VmHWM at the end: the peak over the process's whole life. */
  readonly hwmBytes: number;
}

/**
 * Samples named processes every `intervalMs`. Pids are resolved on every tick through the
 * given functions, so a restarted worker is followed under its new pid.
 */
export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private lastMachine: { at: number; busyMs: number } | undefined;
  private readonly last = new Map<string, { pid: number; at: number; cpuMs: number }>();
  private readonly hwm = new Map<string, number>();
  private readonly pids = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly targets: Readonly<Record<string, () => number | undefined>>,
    private readonly origin: number = Date.now(),
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.tick();
  }

  private tick(): void {
    const at = Date.now();
    const cpu: Record<string, number> = {};
    const rss: Record<string, number> = {};
    for (const [name, resolve] of Object.entries(this.targets)) {
      const pid = resolve();
      if (pid === undefined) continue;
      const reading = readProc(pid);
      if (reading === undefined) continue;
      const previous = this.last.get(name);
      if (previous !== undefined && previous.pid === pid) {
        cpu[name] = cpuShare(previous.cpuMs, reading.cpuMs, at - previous.at);
      }
      rss[name] = reading.rssBytes;
      this.last.set(name, { pid, at, cpuMs: reading.cpuMs });
      this.pids.set(name, pid);
      this.hwm.set(name, Math.max(this.hwm.get(name) ?? 0, reading.hwmBytes));
    }
    const machineNow = machineCpu();
    const machine =
      this.lastMachine === undefined
        ? undefined
        : cpuShare(this.lastMachine.busyMs, machineNow.busyMs, at - this.lastMachine.at);
    this.lastMachine = { at, busyMs: machineNow.busyMs };
    this.samples.push({ t: at - this.origin, machine, cpu, rss });
  }

  /** Mean busy share of the whole machine over samples with fromMs < t <= toMs. */
  machineShare(fromMs = 0, toMs = Infinity): number {
    const shares = this.samples.flatMap((sample) =>
      sample.t > fromMs && sample.t <= toMs && sample.machine !== undefined ? [sample.machine] : [],
    );
    return shares.length > 0 ? shares.reduce((a, b) => a + b, 0) / shares.length : 0;
  }

  /** Per-process totals over samples with fromMs < t <= toMs (sampler clock). */
  totals(fromMs = 0, toMs = Infinity): ProcTotals[] {
    const window = this.samples.filter((sample) => sample.t > fromMs && sample.t <= toMs);
    return Object.keys(this.targets).map((name) => {
      const shares = window.flatMap((sample) => {
        const share = sample.cpu[name];
        return share === undefined ? [] : [share];
      });
      const rss = window.flatMap((sample) => {
        const bytes = sample.rss[name];
        return bytes === undefined ? [] : [bytes];
      });
      return {
        name,
        pid: this.pids.get(name),
        cpuShare: shares.length > 0 ? shares.reduce((a, b) => a + b, 0) / shares.length : 0,
        peakCpuShare: shares.length > 0 ? Math.max(...shares) : 0,
        peakRssBytes: rss.length > 0 ? Math.max(...rss) : 0,
        hwmBytes: this.hwm.get(name) ?? 0,
      };
    });
  }
}

/** Total CPU time of the machine (all cores, all processes) and its core count, from /proc/stat. */
export function machineCpu(): { busyMs: number; totalMs: number } {
  const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  const toMs = (ticks: number) => (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  return { busyMs: toMs(total - idle), totalMs: toMs(total) };
}
