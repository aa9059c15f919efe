/**
 * Realistic log lines with nothing personal in them, in the shapes real systems print (access
 * logs, syslog, JSON, stack traces, metrics, HDFS, Kubernetes, databases, proxies), full of the
 * numbers that trip redaction: sequence numbers, ids, hashes, versions, ports, IP addresses.
 * Deterministic for a seed; for the redaction precision test and the bench's redaction speed.
 */
import { seededRandom } from "./payloads";

type Random = () => number;

const int = (random: Random, min: number, max: number) =>
  min + Math.floor(random() * (max - min + 1));
const pick = <T>(random: Random, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)] as T;
const pad = (value: number, width: number) => String(value).padStart(width, "0");
const digits = (random: Random, count: number) => {
  let text = String(int(random, 1, 9));
  while (text.length < count) text += String(int(random, 0, 9));
  return text;
};
const hex = (random: Random, count: number) => {
  let text = "";
  while (text.length < count) text += int(random, 0, 15).toString(16);
  return text;
};
const uuid = (random: Random) =>
  `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-${pick(random, ["8", "9", "a", "b"])}${hex(random, 3)}-${hex(random, 12)}`;
const ipv4 = (random: Random) =>
  `${pick(random, [10, 172, 192, 203, 198, 34, 35])}.${int(random, 0, 255)}.${int(random, 0, 255)}.${int(random, 1, 254)}`;
const ipv6 = (random: Random) => `2001:db8:${hex(random, 4)}:${hex(random, 4)}::${hex(random, 3)}`;
const version = (random: Random) =>
  `${int(random, 0, 20)}.${int(random, 0, 30)}.${int(random, 0, 200)}`;

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const PATHS = [
  "/api/v2/orders",
  "/api/v1/users/me/settings",
  "/static/js/app.9f2c1e7b.js",
  "/healthz",
  "/search",
  "/cart/items",
  "/graphql",
  "/metrics",
];
const AGENTS = [
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
  "curl/8.5.0",
  "kube-probe/1.29",
  "Go-http-client/2.0",
  "python-requests/2.31.0",
];
const SERVICES = ["checkout", "auth", "search", "billing", "inventory", "notifier", "gateway"];

function isoTime(random: Random): string {
  return `2026-${pad(int(random, 1, 12), 2)}-${pad(int(random, 1, 28), 2)}T${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)}.${pad(int(random, 0, 999), 3)}Z`;
}

function syslogTime(random: Random): string {
  return `${pick(random, MONTHS)} ${String(int(random, 1, 28)).padStart(2, " ")} ${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)}`;
}

type Family = (random: Random) => string;
const families: Record<string, Family> = {
  access: (random) => {
    const query = pick(random, [
      "",
      `?page=${int(random, 1, 40)}`,
      `?id=${digits(random, 10)}`,
      `?q=blue%20shoes&sort=price`,
      `?since=${digits(random, 10)}&limit=100`,
      `?v=${hex(random, 8)}`,
    ]);
    return `${ipv4(random)} - - [${pad(int(random, 1, 28), 2)}/${pick(random, MONTHS)}/2026:${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)} +0000] "${pick(random, ["GET", "POST", "PUT"])} ${pick(random, PATHS)}${query} HTTP/1.1" ${pick(random, [200, 201, 204, 301, 304, 404, 500])} ${int(random, 0, 90_000)} "-" "${pick(random, AGENTS)}" ${int(random, 0, 3)}.${pad(int(random, 0, 999), 3)}`;
  },
  nginxError: (random) =>
    `2026/12/${pad(int(random, 1, 28), 2)} ${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)} [error] ${int(random, 1, 65_000)}#${int(random, 0, 9)}: *${int(random, 1, 9_999_999)} upstream timed out (110: Connection timed out) while reading response header from upstream, client: ${ipv4(random)}, server: _, request: "GET ${pick(random, PATHS)} HTTP/1.1", upstream: "http://${ipv4(random)}:${int(random, 3000, 9000)}/"`,
  syslog: (random) =>
    pick(random, [
      `${syslogTime(random)} web-${pad(int(random, 1, 40), 2)} sshd[${int(random, 300, 65_000)}]: Accepted publickey for deploy from ${ipv4(random)} port ${int(random, 1024, 65_535)} ssh2: ED25519 SHA256:${hex(random, 43)}`,
      `${syslogTime(random)} db-${pad(int(random, 1, 9), 2)} kernel: [${int(random, 1, 9_999_999)}.${pad(int(random, 0, 999_999), 6)}] TCP: request_sock_TCP: Possible SYN flooding on port ${int(random, 1, 65_535)}. Sending cookies.`,
      `${syslogTime(random)} app-${pad(int(random, 1, 9), 2)} CRON[${int(random, 300, 65_000)}]: (root) CMD (/usr/local/bin/rotate --keep ${int(random, 3, 30)})`,
      `${syslogTime(random)} app-${pad(int(random, 1, 9), 2)} systemd[1]: Started session ${int(random, 1, 99_999)} of user deploy.`,
      `<${int(random, 0, 191)}>1 ${isoTime(random)} host-${int(random, 1, 99)} app ${int(random, 100, 65_000)} ID${int(random, 1, 999)} - worker ${int(random, 1, 64)} restarted after ${int(random, 1, 9_999)} ms`,
    ]),
  json: (random) =>
    JSON.stringify({
      ts: isoTime(random),
      level: pick(random, ["info", "warn", "error", "debug"]),
      service: pick(random, SERVICES),
      msg: pick(random, ["request completed", "cache miss", "retrying", "job finished"]),
      req_id: uuid(random),
      trace_id: hex(random, 32),
      span_id: hex(random, 16),
      seq: Number(digits(random, 10)),
      user_id: int(random, 1, 9_999_999),
      duration_ms: int(random, 0, 99_999) / 10,
      bytes: int(random, 0, 99_999_999),
      version: version(random),
    }),
  java: (random) =>
    pick(random, [
      `${isoTime(random).replace("T", " ").replace("Z", "")} [pool-${int(random, 1, 9)}-thread-${int(random, 1, 64)}] ${pick(random, ["INFO", "WARN", "ERROR"])} c.e.${pick(random, SERVICES)}.Worker - processed ${int(random, 1, 99_999_999)} records in ${int(random, 1, 99_999)} ms`,
      `\tat com.example.${pick(random, SERVICES)}.Service.handle(Service.java:${int(random, 10, 2_000)}) ~[app-${version(random)}.jar:${version(random)}]`,
      `\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:${int(random, 100, 1_200)})`,
      `Caused by: java.net.SocketTimeoutException: Read timed out after ${int(random, 1_000, 60_000)} ms (attempt ${int(random, 1, 9)} of 10)`,
      `\t... ${int(random, 1, 99)} common frames omitted`,
    ]),
  node: (random) =>
    pick(random, [
      `    at processTicksAndRejections (node:internal/process/task_queues:${int(random, 10, 99)}:${int(random, 1, 9)})`,
      `    at async Promise.all (index ${int(random, 0, 99)})`,
      `    at Object.handler (/srv/app/dist/${pick(random, SERVICES)}.js:${int(random, 1, 9_999)}:${int(random, 1, 120)})`,
      `Error: connect ECONNREFUSED ${ipv4(random)}:${int(random, 1_000, 65_000)}`,
      `(node:${int(random, 1, 99_999)}) Warning: Possible EventEmitter memory leak detected. ${int(random, 11, 99)} listeners added`,
    ]),
  metrics: (random) =>
    pick(random, [
      `disk.io ${digits(random, 4)} ${digits(random, 4)} ${digits(random, int(random, 3, 7))} ${digits(random, int(random, 2, 4))}`,
      `cpu ${int(random, 0, 99_999)} ${int(random, 0, 9_999)} ${int(random, 0, 99_999)} ${int(random, 0, 9_999_999)} ${int(random, 0, 99_999)} 0 ${int(random, 0, 9_999)} 0 0 0`,
      `http_requests_total{method="get",code="200"} ${digits(random, int(random, 5, 11))} ${1_764_000_000_000 + int(random, 0, 9_999_999_999)}`,
      `mem total=${digits(random, 8)} used=${digits(random, 8)} free=${digits(random, 7)} shared=${digits(random, 6)}`,
      `net.if.eth0 rx_bytes ${digits(random, 10)} tx_bytes ${digits(random, 10)} rx_packets ${digits(random, 8)}`,
      `${pick(random, SERVICES)}.latency.p99:${int(random, 1, 9_999)}|ms|@0.${int(random, 1, 9)}`,
      `load average: ${int(random, 0, 9)}.${pad(int(random, 0, 99), 2)}, ${int(random, 0, 9)}.${pad(int(random, 0, 99), 2)}, ${int(random, 0, 9)}.${pad(int(random, 0, 99), 2)}`,
      `vmstat ${int(random, 0, 9)} ${int(random, 0, 9)} ${digits(random, 6)} ${digits(random, 6)} ${digits(random, 5)} ${digits(random, 7)} 0 0 ${int(random, 0, 999)} ${int(random, 0, 9_999)} ${int(random, 0, 99_999)} ${int(random, 0, 99_999)}`,
    ]),
  hdfs: (random) =>
    `08${pad(int(random, 11, 12), 2)}${pad(int(random, 1, 30), 2)} ${pad(int(random, 0, 23), 2)}${pad(int(random, 0, 59), 2)}${pad(int(random, 0, 59), 2)} ${int(random, 1, 35_000)} ${pick(random, ["INFO", "WARN"])} dfs.${pick(random, ["DataNode$PacketResponder", "FSNamesystem", "DataNode$DataXceiver"])}: ${pick(
      random,
      [
        `PacketResponder ${int(random, 0, 2)} for block blk_${pick(random, ["", "-"])}${digits(random, int(random, 17, 19))} terminating`,
        `Received block blk_${pick(random, ["", "-"])}${digits(random, int(random, 17, 19))} of size ${int(random, 1, 67_108_864)} from /${ipv4(random)}`,
        `BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/_task_200811092030_0001_m_${pad(int(random, 0, 9_999), 6)}_0/part-${pad(int(random, 0, 9_999), 5)}. blk_${digits(random, 19)}`,
      ],
    )}`,
  kubernetes: (random) =>
    pick(random, [
      `I${pad(int(random, 1, 12), 2)}${pad(int(random, 1, 28), 2)} ${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)}.${digits(random, 6)} ${int(random, 1, 99)} controller.go:${int(random, 10, 999)}] "Observed a panic" pod="default/${pick(random, SERVICES)}-${hex(random, 10)}-${hex(random, 5)}" resourceVersion="${digits(random, 8)}"`,
      `[task ${digits(random, 10)}] [attempt_${digits(random, 10)}_${pad(int(random, 1, 9_999), 4)}_m_${pad(int(random, 0, 999_999), 6)}_0] finished in ${int(random, 1, 9_999)} ms`,
      `image=registry.local/${pick(random, SERVICES)}@sha256:${hex(random, 64)} digest ok, layers ${int(random, 1, 40)}`,
      `commit ${hex(random, 40)} build ${int(random, 2024, 2026)}.${pad(int(random, 1, 12), 2)}.${pad(int(random, 1, 28), 2)}.${int(random, 1, 9_999)} version ${version(random)}`,
    ]),
  database: (random) =>
    pick(random, [
      `${isoTime(random)} [${int(random, 100, 99_999)}] LOG:  duration: ${int(random, 0, 99_999)}.${pad(int(random, 0, 999), 3)} ms  statement: SELECT * FROM orders WHERE id = ${digits(random, int(random, 6, 12))} LIMIT ${int(random, 1, 100)}`,
      `${isoTime(random)} [${int(random, 100, 99_999)}] LOG:  checkpoint complete: wrote ${int(random, 0, 99_999)} buffers (${int(random, 0, 99)}.${int(random, 0, 9)}%); ${int(random, 0, 9)} WAL file(s) added, ${int(random, 0, 99)} removed, ${int(random, 0, 99)} recycled; write=${int(random, 0, 999)}.${pad(int(random, 0, 999), 3)} s`,
      `redis ${int(random, 1, 99_999)}:M ${pad(int(random, 1, 28), 2)} ${pick(random, MONTHS)} 2026 ${pad(int(random, 0, 23), 2)}:${pad(int(random, 0, 59), 2)}:${pad(int(random, 0, 59), 2)}.${pad(int(random, 0, 999), 3)} * ${int(random, 1, 99_999)} changes in ${int(random, 1, 3_600)} seconds. Saving...`,
      `kafka offset=${digits(random, int(random, 7, 12))} partition=${int(random, 0, 63)} lag=${int(random, 0, 999_999)} topic=events-${int(random, 1, 9)}`,
    ]),
  proxy: (random) =>
    pick(random, [
      `${isoTime(random)} ${pick(random, ["info", "warn"])} envoy upstream_cx_total=${digits(random, 7)} upstream_rq_time=${int(random, 0, 9_999)} x-request-id=${uuid(random)} peer=[${ipv6(random)}]:${int(random, 1_024, 65_535)}`,
      `${ipv6(random)} - - "GET ${pick(random, PATHS)} HTTP/2.0" ${pick(random, [200, 404])} ${int(random, 0, 99_999)} rt=${int(random, 0, 9)}.${pad(int(random, 0, 999), 3)}`,
      `tls handshake ok cipher=TLS_AES_128_GCM_SHA256 session=${hex(random, 64)} sni=api.internal.example.net alpn=h2`,
      `price ${int(random, 1, 999)}.${pad(int(random, 0, 99), 2)} EUR order ${digits(random, 12)} items ${int(random, 1, 20)} total $${int(random, 1, 9)},${pad(int(random, 0, 999), 3)}.${pad(int(random, 0, 99), 2)}`,
    ]),
};

export const LOG_FAMILIES = Object.keys(families);

/** `count` lines spread evenly over the families, deterministic for `seed`. */
export function realisticLogLines(count: number, seed = 1): string[] {
  const random = seededRandom(seed);
  const all = Object.values(families);
  return Array.from({ length: count }, (_, index) => (all[index % all.length] as Family)(random));
}
