/**
 * Hostile input against the running local stack (AUTH_MODE=api_key): every request of the table
 * expects one status and, wherever our code answers, an RFC 9457 problem+json body with a
 * non-empty `detail`. After each request the server must still answer; after the table a valid
 * record must still be accepted, and a scan of Firestore must find nothing written outside the
 * caller's tenant and no document for any hostile log id. Last, the logs of both functions are
 * searched for API keys, Authorization values and the marker every sent text carries.
 *
 * Every body is read by the ingest body gate, before the Functions Framework's own parser could
 * answer with its HTML pages, so malformed JSON too gets problem+json. One kind of request never
 * reaches our code, so it cannot be answered with problem+json:
 * - "http-parser": Node's own HTTP parser (llhttp) refuses a malformed request head (a bare CR
 *   or LF, obs-fold, NUL in a header) with a bare 400 and closes the connection, before any
 *   JavaScript runs. In production Google's front end refuses these before Cloud Run.
 * For it, the test asserts the status and that nothing was written.
 */
import { Firestore } from "@google-cloud/firestore";
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import type { PipelineMessage } from "../../functions/src/lib/schema";
import { RUN_ID, type TestStack, pollUntil, startTestStack } from "./support/stack";

// ---------------------------------------------------------------------------------------------
// Limits of the stack under test: small, so "at" and "one over" are cheap to send.

const LIMITS = {
  MAX_BODY_BYTES: 4096,
  MAX_TEXT_CHARS: 1000,
  MAX_MESSAGE_BYTES: 2048,
  API_KEY_CACHE_SECONDS: 1,
};

/** In every text this suite sends; must never appear in a log line. */
const MARKER = `hostile-marker-${randomUUID()}`;
const RUN = randomUUID().slice(0, 8);

/** The caller's tenant, at the 63-character limit of tenant ids. */
const TENANT_A = `hostile-a-${RUN}-`.padEnd(63, "a");
/** Another tenant with its own key: the caller must never reach it. */
const TENANT_B = `hostile-b-${RUN}`;

/** Log ids of requests that must be refused: no document may ever carry one. */
const hostileLogId = (n: number) => `hx-${RUN}-${n}`;
/** Log ids of records that must be accepted and stored under TENANT_A. */
const acceptedLogId = (name: string) => `ok-${RUN}-${name}`;

// ---------------------------------------------------------------------------------------------
// Requests and replies

interface Reply {
  readonly status: number;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

interface HttpRequestSpec {
  readonly method?: string;
  readonly path?: string;
  /** Sent as they are; `authorization` defaults to tenant A's key, null omits it. */
  readonly headers?: Readonly<Record<string, string | null>>;
  readonly body?: string | Buffer;
}

type Expectation =
  /** Our handler answers: problem+json with this status. */
  | "problem"
  /** Node's HTTP parser answers (see the file comment). */
  | "http-parser";

interface HostileCase {
  readonly name: string;
  readonly status: number;
  readonly answeredBy?: Expectation;
  /** The request; a function of the keys, which exist only once the stack runs. */
  readonly send: (keys: Keys) => Promise<Reply>;
}

interface Keys {
  readonly a: string;
  readonly b: string;
  readonly revoked: string;
}

let stack: TestStack;

function httpRequest(spec: HttpRequestSpec, keys: Keys): Promise<Reply> {
  const url = new URL(stack.ingestUrl);
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body);
  const headers: Record<string, string> = {};
  const given = { authorization: `Bearer ${keys.a}`, ...spec.headers };
  for (const [name, value] of Object.entries(given)) if (value !== null) headers[name] = value;
  if (body !== undefined) headers["content-length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        // Verbatim: a URL object would resolve dot segments before they are sent.
        path: spec.path ?? "/",
        method: spec.method ?? "POST",
        headers,
        agent: false,
        timeout: 15_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: flatHeaders(response.headers),
            body: Buffer.concat(chunks),
          }),
        );
        response.on("error", reject);
      },
    );
    request.on("timeout", () =>
      request.destroy(new Error(`no answer to ${spec.method} ${spec.path}`)),
    );
    request.on("error", reject);
    request.end(body);
  });
}

function flatHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

/**
 * Sends bytes as they are over a fresh TCP connection and reads the one answer. Node's HTTP
 * client refuses CR and LF in header values, so header-splitting requests go this way.
 */
function rawRequest(head: string, body: Buffer = Buffer.alloc(0)): Promise<Reply> {
  const url = new URL(stack.ingestUrl);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(Number(url.port), url.hostname, () => {
      // Not end(): a half-closed connection may be dropped before an async handler answers.
      socket.write(Buffer.concat([Buffer.from(head, "latin1"), body]));
    });
    socket.setTimeout(15_000, () => socket.destroy(new Error("no answer to a raw request")));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      try {
        resolve(parseRawReply(Buffer.concat(chunks)));
      } catch (error) {
        reject(error);
      }
    });
  });
}

function parseRawReply(bytes: Buffer): Reply {
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0)
    throw new Error(`no HTTP answer head in ${JSON.stringify(bytes.toString("latin1"))}`);
  const [statusLine = "", ...lines] = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
  if (status === undefined) throw new Error(`not an HTTP status line: ${statusLine}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = bytes.subarray(end + 4);
  if (headers["content-length"] !== undefined) {
    body = body.subarray(0, Number(headers["content-length"]));
  }
  return { status: Number(status), headers, body };
}

/** A request head for rawRequest; `extra` is inserted verbatim, CR and LF included. */
function rawHead(key: string, extra: string, bodyLength: number, contentType = "text/plain") {
  const { host } = new URL(stack.ingestUrl);
  return (
    `POST /ingest HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: ${contentType}\r\n${extra}Content-Length: ${bodyLength}\r\n` +
    "Connection: close\r\n\r\n"
  );
}

// ---------------------------------------------------------------------------------------------
// Bodies

const text = (n: number) => `${MARKER} hostile ${n}`;

/** A JSON upload; `log_id` defaults to the case's hostile log id. */
function jsonBody(n: number, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ log_id: hostileLogId(n), text: text(n), ...fields });
}

const jsonPost =
  (n: number, fields: Record<string, unknown> = {}, headers = {}) =>
  (keys: Keys) =>
    httpRequest(
      { headers: { "content-type": "application/json", ...headers }, body: jsonBody(n, fields) },
      keys,
    );

const rawJsonPost =
  (body: string | Buffer, contentType = "application/json", headers = {}) =>
  (keys: Keys) =>
    httpRequest({ headers: { "content-type": contentType, ...headers }, body }, keys);

const textPost =
  (body: string | Buffer, headers: Record<string, string | null> = {}) =>
  (keys: Keys) =>
    httpRequest({ headers: { "content-type": "text/plain", ...headers }, body }, keys);

/** A JSON body of exactly `bytes` bytes: a valid upload padded with JSON whitespace. */
function jsonOfSize(bytes: number, logId: string): string {
  const json = JSON.stringify({ log_id: logId, text: `${MARKER} padded` });
  if (json.length > bytes) throw new Error("cannot pad below the record's own size");
  return json.slice(0, -1) + " ".repeat(bytes - json.length) + "}";
}

/**
 * A text/plain text whose pipeline message takes exactly `bytes` bytes. Control characters
 * take 6 bytes each once JSON-escaped, so the message limit is reached with a short body.
 */
function textForMessageBytes(bytes: number, logId: string): string {
  const sizeOf = (candidate: string) => {
    // Typed as the schema's message: a new required field fails the compile, not the test.
    const message: PipelineMessage = {
      v: 1,
      records: [
        {
          tenant_id: TENANT_A,
          log_id: logId,
          source: "text_upload",
          text: candidate,
          received_at: new Date().toISOString(),
        },
      ],
    };
    return Buffer.byteLength(JSON.stringify(message));
  };
  const base = sizeOf(MARKER);
  const escapes = Math.floor((bytes - base) / 6);
  const candidate = MARKER + "\u0001".repeat(escapes) + "x".repeat(bytes - base - escapes * 6);
  if (sizeOf(candidate) !== bytes) throw new Error("message size arithmetic is off");
  return candidate;
}

function nested(depth: number, leaf: string): string {
  return "[".repeat(depth) + leaf + "]".repeat(depth);
}

// ---------------------------------------------------------------------------------------------
// The table

const methodCase = (method: string, n: number): HostileCase => ({
  name: `method ${method}`,
  status: 405,
  send: (keys) =>
    httpRequest(
      {
        method,
        headers: { "content-type": "application/json" },
        body: method === "GET" || method === "HEAD" ? undefined : jsonBody(n),
      },
      keys,
    ),
});

const badTenant = (name: string, tenantId: unknown, n: number): HostileCase => ({
  name: `tenant_id ${name}`,
  status: 400,
  send: jsonPost(n, { tenant_id: tenantId }),
});

const badLogId = (name: string, logId: unknown, n: number): HostileCase => ({
  name: `log_id ${name}`,
  status: 400,
  send: jsonPost(n, { tenant_id: TENANT_A, log_id: logId }),
});

const HOSTILE: readonly HostileCase[] = [
  // --- Keys and tenants -----------------------------------------------------------------------
  { name: "no API key", status: 401, send: jsonPost(1, {}, { authorization: null }) },
  {
    name: "well-formed unknown key",
    status: 401,
    send: jsonPost(2, {}, { authorization: `Bearer rdpk_${"A".repeat(43)}` }),
  },
  {
    name: "key without the rdpk_ prefix",
    status: 401,
    send: jsonPost(3, {}, { authorization: `Bearer ${"k".repeat(48)}` }),
  },
  {
    name: "Basic credentials instead of a key",
    status: 401,
    send: jsonPost(4, {}, { authorization: `Basic ${Buffer.from("acme:x").toString("base64")}` }),
  },
  {
    name: "revoked key",
    status: 401,
    send: (keys) => jsonPost(5, {}, { authorization: `Bearer ${keys.revoked}` })(keys),
  },
  {
    name: "key in the query string only",
    status: 401,
    send: (keys) =>
      httpRequest(
        {
          path: `/ingest?api_key=${keys.a}`,
          headers: { authorization: null, "content-type": "application/json" },
          body: jsonBody(6),
        },
        keys,
      ),
  },
  {
    name: "no key and a path-like tenant (auth comes first)",
    status: 401,
    send: jsonPost(7, { tenant_id: "a/b" }, { authorization: null }),
  },
  {
    name: "key of tenant A, tenant_id B in the body",
    status: 403,
    send: jsonPost(8, { tenant_id: TENANT_B }),
  },
  {
    name: "key of tenant A, X-Tenant-ID B on text/plain",
    status: 403,
    send: textPost(text(9), { "x-tenant-id": TENANT_B, "x-log-id": hostileLogId(9) }),
  },
  {
    name: "key of tenant A as X-API-Key, tenant_id B",
    status: 403,
    send: (keys) =>
      jsonPost(10, { tenant_id: TENANT_B }, { authorization: null, "x-api-key": keys.a })(keys),
  },
  {
    name: "keys of A (Authorization) and B (X-API-Key), tenant_id B",
    status: 403,
    send: (keys) => jsonPost(11, { tenant_id: TENANT_B }, { "x-api-key": keys.b })(keys),
  },
  {
    name: "duplicate tenant_id keys, the last naming B",
    status: 403,
    send: rawJsonPost(
      `{"tenant_id":"${TENANT_A}","log_id":"${hostileLogId(12)}","text":"${text(12)}",` +
        `"tenant_id":"${TENANT_B}"}`,
    ),
  },

  // --- Path-like and reserved tenant ids --------------------------------------------------------
  badTenant("a/b", "a/b", 13),
  badTenant("..", "..", 14),
  badTenant(".", ".", 15),
  badTenant("__x__", "__x__", 16),
  badTenant("empty", "", 17),
  badTenant("whitespace", "   ", 18),
  badTenant("with a trailing space", `${TENANT_A} `, 19),
  badTenant("in upper case", TENANT_A.toUpperCase(), 20),
  badTenant("one over 63 characters", `${TENANT_A}a`, 21),
  badTenant("of 3,000 characters (inside the body limit)", "a".repeat(3_000), 22),
  badTenant("with a Cyrillic look-alike (\u04bb for h)", `\u04bb${TENANT_A.slice(1)}`, 23),
  badTenant("with a fullwidth look-alike", `\uff48${TENANT_A.slice(1)}`, 24),
  badTenant("with CRLF", `${TENANT_A}\r\n`, 25),
  badTenant("with a control character", `${TENANT_A.slice(0, -1)}\u0007`, 26),
  badTenant("with a NUL", `${TENANT_A.slice(0, -1)}\u0000`, 27),
  badTenant("escaping the tenant (x/../B)", `x/../${TENANT_B}`, 28),

  // --- Path-like and reserved log ids -----------------------------------------------------------
  badLogId("a/b", "a/b", 29),
  badLogId("..", "..", 30),
  badLogId(".", ".", 31),
  badLogId("__x__", "__x__", 32),
  badLogId("empty", "", 33),
  badLogId("of 129 characters", `x${"1".repeat(128)}`, 34),
  badLogId("with a space", `${hostileLogId(35)} x`, 35),
  badLogId("with a fullwidth look-alike", `\uff49d-${RUN}`, 36),
  badLogId("escaping into api_keys", "../../../api_keys/x", 37),
  {
    name: "X-Tenant-ID a/b on text/plain",
    status: 400,
    send: textPost(text(38), { "x-tenant-id": "a/b", "x-log-id": hostileLogId(38) }),
  },
  {
    name: "X-Tenant-ID .. on text/plain",
    status: 400,
    send: textPost(text(39), { "x-tenant-id": "..", "x-log-id": hostileLogId(39) }),
  },
  {
    name: "X-Log-ID __x__ on text/plain",
    status: 400,
    send: textPost(text(40), { "x-log-id": "__x__" }),
  },
  {
    name: "X-Log-ID of whitespace only",
    status: 400,
    send: textPost(text(41), { "x-log-id": "   " }),
  },

  // --- Sizes: one byte (or character) over each limit --------------------------------------------
  {
    name: `JSON body of MAX_BODY_BYTES + 1 (${LIMITS.MAX_BODY_BYTES + 1})`,
    status: 413,
    send: rawJsonPost(jsonOfSize(LIMITS.MAX_BODY_BYTES + 1, hostileLogId(42))),
  },
  {
    name: "text/plain body of MAX_BODY_BYTES + 1",
    status: 413,
    send: textPost(MARKER + "x".repeat(LIMITS.MAX_BODY_BYTES + 1 - MARKER.length), {
      "x-log-id": hostileLogId(43),
    }),
  },
  {
    name: `text of MAX_TEXT_CHARS + 1 (${LIMITS.MAX_TEXT_CHARS + 1}) characters`,
    status: 400,
    send: jsonPost(44, { text: MARKER + "x".repeat(LIMITS.MAX_TEXT_CHARS + 1 - MARKER.length) }),
  },
  {
    name: `pipeline message of MAX_MESSAGE_BYTES + 1 (${LIMITS.MAX_MESSAGE_BYTES + 1})`,
    status: 413,
    send: textPost(textForMessageBytes(LIMITS.MAX_MESSAGE_BYTES + 1, hostileLogId(45)), {
      "x-log-id": hostileLogId(45),
    }),
  },
  {
    name: "huge JSON (2 MiB)",
    status: 413,
    send: rawJsonPost(
      JSON.stringify({
        log_id: hostileLogId(46),
        text: MARKER,
        filler: "x".repeat(2 * 1024 * 1024),
      }),
    ),
  },

  // --- Nesting, types, extra and duplicate keys -----------------------------------------------
  {
    name: "deeply nested arrays in an extra member (within the size limit)",
    status: 400,
    send: rawJsonPost(
      `{"log_id":"${hostileLogId(47)}","text":"${text(47)}","x":${nested(1900, "1")}}`,
    ),
  },
  {
    name: "deeply nested objects as text",
    status: 400,
    send: rawJsonPost(
      `{"log_id":"${hostileLogId(48)}","text":` +
        `${'{"text":'.repeat(400)}"${text(48)}"${"}".repeat(400)}}`,
    ),
  },
  {
    name: "deeply nested and huge (100,000 levels)",
    status: 413,
    send: rawJsonPost(`{"text":"${text(49)}","x":${nested(100_000, "1")}}`),
  },
  { name: "text as a number", status: 400, send: jsonPost(50, { text: 12345 }) },
  { name: "text null", status: 400, send: jsonPost(51, { text: null }) },
  { name: "text as an array", status: 400, send: jsonPost(52, { text: [text(52)] }) },
  { name: "tenant_id as a number", status: 400, send: jsonPost(53, { tenant_id: 7 }) },
  { name: "log_id as a boolean", status: 400, send: jsonPost(54, { log_id: true }) },
  { name: "tenant_id as an object", status: 400, send: jsonPost(55, { tenant_id: { $ne: "" } }) },
  {
    name: "an array of records instead of one",
    status: 400,
    send: rawJsonPost(`[${jsonBody(56)}]`),
  },
  { name: "an empty object", status: 400, send: rawJsonPost("{}") },
  { name: "empty text", status: 400, send: jsonPost(58, { text: "" }) },
  { name: "an extra member", status: 400, send: jsonPost(59, { admin: true }) },
  {
    name: "a __proto__ member",
    status: 400,
    send: rawJsonPost(
      `{"log_id":"${hostileLogId(60)}","text":"${text(60)}","__proto__":{"tenant_id":"${TENANT_B}"}}`,
    ),
  },
  {
    name: "duplicate log_id keys, the last path-like",
    status: 400,
    send: rawJsonPost(
      `{"log_id":"${hostileLogId(61)}","text":"${text(61)}","log_id":"../${hostileLogId(61)}"}`,
    ),
  },

  // --- Invalid UTF-8 and NUL ------------------------------------------------------------------
  {
    name: "text/plain with invalid UTF-8 (0xFF)",
    status: 400,
    send: textPost(Buffer.concat([Buffer.from(text(62)), Buffer.from([0xff, 0xfe])]), {
      "x-log-id": hostileLogId(62),
    }),
  },
  {
    name: "JSON with invalid UTF-8 inside the text string",
    status: 400,
    send: rawJsonPost(
      Buffer.concat([
        Buffer.from(`{"log_id":"${hostileLogId(63)}","text":"${text(63)} `),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"}'),
      ]),
    ),
  },
  {
    name: "text/plain with an overlong encoding of '/'",
    status: 400,
    send: textPost(Buffer.concat([Buffer.from(text(64)), Buffer.from([0xc0, 0xaf])]), {
      "x-log-id": hostileLogId(64),
    }),
  },
  {
    name: "text/plain with a UTF-8 encoded surrogate",
    status: 400,
    send: textPost(Buffer.concat([Buffer.from(text(65)), Buffer.from([0xed, 0xa0, 0x80])]), {
      "x-log-id": hostileLogId(65),
    }),
  },
  {
    name: "text/plain with a NUL byte",
    status: 400,
    send: textPost(`${text(66)}\u0000tail`, { "x-log-id": hostileLogId(66) }),
  },
  {
    name: "JSON text with an escaped NUL",
    status: 400,
    send: jsonPost(67, { text: `${text(67)}\u0000` }),
  },
  {
    name: "JSON text with a lone surrogate escape",
    status: 400,
    send: rawJsonPost(`{"log_id":"${hostileLogId(68)}","text":"${text(68)} \\ud800"}`),
  },
  {
    name: "empty text/plain body",
    status: 400,
    send: textPost("", { "x-log-id": hostileLogId(69) }),
  },
  { name: "empty application/json body", status: 400, send: rawJsonPost("") },

  // --- Content types -------------------------------------------------------------------------
  {
    name: "no Content-Type",
    status: 415,
    send: rawJsonPost(jsonBody(71), undefined, { "content-type": null }),
  },
  { name: "text/html", status: 415, send: rawJsonPost(jsonBody(72), "text/html") },
  {
    name: "multipart/form-data",
    status: 415,
    send: rawJsonPost(
      `--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n${text(73)}\r\n--b--\r\n`,
      "multipart/form-data; boundary=b",
    ),
  },
  {
    name: "application/x-www-form-urlencoded",
    status: 415,
    send: rawJsonPost(`text=${encodeURIComponent(text(74))}`, "application/x-www-form-urlencoded"),
  },
  {
    name: "text/plain; charset=iso-8859-1",
    status: 415,
    send: textPost(text(75), { "content-type": "text/plain; charset=iso-8859-1" }),
  },
  {
    name: "a list of media types",
    status: 415,
    send: rawJsonPost(jsonBody(76), "application/json, text/plain"),
  },
  { name: "application/jsonx", status: 415, send: rawJsonPost(jsonBody(77), "application/jsonx") },
  {
    name: "application/json; charset=latin1",
    status: 415,
    send: rawJsonPost(jsonBody(78), "application/json; charset=latin1"),
  },
  {
    name: "application/json with a plain-text body",
    status: 400,
    send: rawJsonPost(text(79)),
  },
  {
    name: "application/json cut short",
    status: 400,
    send: rawJsonPost(jsonBody(80).slice(0, -5)),
  },
  {
    name: "application/json holding a bare string",
    status: 400,
    send: rawJsonPost(JSON.stringify(text(81))),
  },

  // --- Methods and paths --------------------------------------------------------------------
  methodCase("GET", 82),
  methodCase("PUT", 83),
  methodCase("DELETE", 84),
  methodCase("PATCH", 85),
  methodCase("OPTIONS", 86),
  methodCase("HEAD", 87),
  {
    name: "POST to a Firestore-like path",
    status: 404,
    send: (keys) =>
      httpRequest(
        {
          path: `/tenants/${TENANT_B}/processed_logs/${hostileLogId(88)}`,
          headers: { "content-type": "application/json" },
          body: jsonBody(88),
        },
        keys,
      ),
  },
  {
    name: "POST to a dot-segment path",
    status: 404,
    send: (keys) =>
      httpRequest(
        {
          path: "/ingest/../admin",
          headers: { "content-type": "application/json" },
          body: jsonBody(89),
        },
        keys,
      ),
  },

  // --- Header splitting, over a raw socket ------------------------------------------------------
  {
    name: "CRLF in X-Tenant-ID injecting a second X-Tenant-ID",
    status: 400,
    send: (keys) => {
      const body = Buffer.from(text(90));
      const extra = `X-Log-ID: ${hostileLogId(90)}\r\nX-Tenant-ID: ${TENANT_A}\r\nX-Tenant-ID: ${TENANT_B}\r\n`;
      return rawRequest(rawHead(keys.a, extra, body.length), body);
    },
  },
  {
    name: "CRLF in X-Log-ID injecting X-Tenant-ID B",
    status: 403,
    send: (keys) => {
      const body = Buffer.from(text(91));
      const extra = `X-Log-ID: ${hostileLogId(91)}\r\nX-Tenant-ID: ${TENANT_B}\r\n`;
      return rawRequest(rawHead(keys.a, extra, body.length), body);
    },
  },
  {
    name: "UTF-8 look-alike bytes in X-Tenant-ID",
    status: 400,
    send: (keys) => {
      const body = Buffer.from(text(92));
      const lookAlike = Buffer.from(`\u04bb${TENANT_A.slice(1)}`, "utf8").toString("latin1");
      const extra = `X-Log-ID: ${hostileLogId(92)}\r\nX-Tenant-ID: ${lookAlike}\r\n`;
      return rawRequest(rawHead(keys.a, extra, body.length), body);
    },
  },
  {
    name: "bare LF inside a header value",
    status: 400,
    answeredBy: "http-parser",
    send: (keys) => {
      const body = Buffer.from(text(93));
      return rawRequest(
        rawHead(keys.a, `X-Tenant-ID: ${TENANT_A}\nX-Tenant-ID: ${TENANT_B}\r\n`, body.length),
        body,
      );
    },
  },
  {
    name: "bare CR inside a header value",
    status: 400,
    answeredBy: "http-parser",
    send: (keys) => {
      const body = Buffer.from(text(94));
      return rawRequest(
        rawHead(keys.a, `X-Tenant-ID: ${TENANT_A}\rX-Tenant-ID: ${TENANT_B}\r\n`, body.length),
        body,
      );
    },
  },
  {
    name: "obs-fold continuation line",
    status: 400,
    answeredBy: "http-parser",
    send: (keys) => {
      const body = Buffer.from(text(95));
      return rawRequest(
        rawHead(keys.a, `X-Tenant-ID: ${TENANT_A}\r\n ${TENANT_B}\r\n`, body.length),
        body,
      );
    },
  },
  {
    name: "NUL inside a header value",
    status: 400,
    answeredBy: "http-parser",
    send: (keys) => {
      const body = Buffer.from(text(96));
      return rawRequest(
        rawHead(keys.a, `X-Log-ID: ${hostileLogId(96)}\u0000x\r\n`, body.length),
        body,
      );
    },
  },
];

/** Requests at each limit: accepted, and stored under tenant A with these log ids. */
const AT_LIMITS: ReadonlyArray<{
  readonly name: string;
  readonly logId: string;
  readonly send: (keys: Keys) => Promise<Reply>;
}> = [
  {
    name: `JSON body of exactly MAX_BODY_BYTES (${LIMITS.MAX_BODY_BYTES})`,
    logId: acceptedLogId("body-limit"),
    send: rawJsonPost(jsonOfSize(LIMITS.MAX_BODY_BYTES, acceptedLogId("body-limit"))),
  },
  {
    name: `text of exactly MAX_TEXT_CHARS (${LIMITS.MAX_TEXT_CHARS}) characters`,
    logId: acceptedLogId("text-limit"),
    send: rawJsonPost(
      JSON.stringify({
        log_id: acceptedLogId("text-limit"),
        text: MARKER + "x".repeat(LIMITS.MAX_TEXT_CHARS - MARKER.length),
      }),
    ),
  },
  {
    name: `pipeline message of exactly MAX_MESSAGE_BYTES (${LIMITS.MAX_MESSAGE_BYTES})`,
    logId: acceptedLogId("message-limit"),
    send: textPost(textForMessageBytes(LIMITS.MAX_MESSAGE_BYTES, acceptedLogId("message-limit")), {
      "x-log-id": acceptedLogId("message-limit"),
    }),
  },
  {
    name: "log_id of exactly 128 characters",
    logId: `ok${RUN}`.padEnd(128, "9"),
    send: rawJsonPost(JSON.stringify({ log_id: `ok${RUN}`.padEnd(128, "9"), text: text(0) })),
  },
  {
    name: "tenant_id of exactly 63 characters, named in the body",
    logId: acceptedLogId("tenant-limit"),
    send: rawJsonPost(
      JSON.stringify({ tenant_id: TENANT_A, log_id: acceptedLogId("tenant-limit"), text: text(0) }),
    ),
  },
];

// ---------------------------------------------------------------------------------------------
// Firestore scan

/** Every document under tenants/ (any collection) and dead_letters/, and the root collections. */
async function scanFirestore(db: Firestore): Promise<Set<string>> {
  const paths = new Set<string>();
  for (const root of await db.listCollections()) paths.add(`collection:${root.id}`);
  for (const group of ["processed_logs", "failed_logs"]) {
    for (const doc of (await db.collectionGroup(group).select().get()).docs)
      paths.add(doc.ref.path);
  }
  for (const tenant of await db.collection("tenants").listDocuments()) {
    for (const collection of await tenant.listCollections()) {
      for (const doc of await collection.listDocuments()) paths.add(doc.path);
    }
  }
  for (const doc of await db.collection("dead_letters").listDocuments()) paths.add(doc.path);
  return paths;
}

// ---------------------------------------------------------------------------------------------

describe("hostile requests against the running stack (AUTH_MODE=api_key)", function () {
  this.timeout(120_000);
  let firestore: Firestore;
  let keys: Keys;
  let before_: Set<string>;
  const accepted = new Set<string>();
  const hostileStatuses = new Map<string, number>();

  const ping = async () => {
    // No write: a GET answers 405 from our handler, so the function is alive and answering.
    const reply = await httpRequest({ method: "GET", headers: { authorization: null } }, keys);
    expect(reply.status, "the server still answers").to.equal(405);
  };

  before(async () => {
    stack = await startTestStack("hostile", {
      AUTH_MODE: "api_key",
      MAX_BODY_BYTES: String(LIMITS.MAX_BODY_BYTES),
      MAX_TEXT_CHARS: String(LIMITS.MAX_TEXT_CHARS),
      MAX_MESSAGE_BYTES: String(LIMITS.MAX_MESSAGE_BYTES),
      API_KEY_CACHE_SECONDS: String(LIMITS.API_KEY_CACHE_SECONDS),
      // Every line a record can cause, so the log scan below sees them all.
      LOG_RECORD_SUCCESS: "true",
    });
    firestore = new Firestore({ projectId: stack.project });
    const apiKeys = createFirestoreApiKeys(firestore);
    const revoked = await apiKeys.create(TENANT_A, "hostile revoked");
    await apiKeys.revoke(TENANT_A, revoked.key_id);
    keys = {
      a: (await apiKeys.create(TENANT_A, "hostile")).key,
      b: (await apiKeys.create(TENANT_B, "hostile other tenant")).key,
      revoked: revoked.key,
    };
    before_ = await scanFirestore(firestore);
  });

  after(async () => {
    await firestore?.terminate();
    await stack?.stop();
  });

  // Mocha runs a suite's own tests before its child suites: every step is a child suite, so
  // they run in this order.
  describe("each hostile request is refused with its status", () => {
    it(`has at least 40 cases (${HOSTILE.length})`, () => {
      expect(HOSTILE.length).to.be.at.least(40);
      expect(new Set(HOSTILE.map((c) => c.name)).size, "unique names").to.equal(HOSTILE.length);
    });

    for (const hostile of HOSTILE) {
      const by = hostile.answeredBy ?? "problem";
      it(`${hostile.name} → ${hostile.status}${by === "problem" ? "" : ` (${by})`}`, async () => {
        const reply = await hostile.send(keys);
        hostileStatuses.set(hostile.name, reply.status);
        const bodyText = reply.body.toString("utf8");
        expect(reply.status, bodyText.slice(0, 300)).to.equal(hostile.status);
        // No answer ever reflects a key.
        expect(bodyText).to.not.include("rdpk_");

        if (by === "problem") {
          expect(reply.headers["content-type"]).to.match(/^application\/problem\+json(;|$)/);
          if (hostile.name !== "method HEAD") {
            const problem = JSON.parse(bodyText) as Record<string, unknown>;
            expect(problem.status).to.equal(hostile.status);
            expect(problem.detail).to.be.a("string").that.is.not.empty;
            expect(problem.type).to.be.a("string").that.is.not.empty;
            expect(problem.title).to.be.a("string").that.is.not.empty;
          }
          if (hostile.status === 401) expect(reply.headers["www-authenticate"]).to.match(/^Bearer/);
          if (hostile.status === 405) expect(reply.headers.allow).to.equal("POST");
        } else {
          // Node's HTTP parser answered with a bare head and closed the connection.
          expect(reply.headers["content-type"]).to.equal(undefined);
          expect(reply.headers.connection).to.equal("close");
          expect(reply.body.length).to.equal(0);
        }
        await ping();
      });
    }
  });

  describe("requests at each limit are accepted", () => {
    for (const atLimit of AT_LIMITS) {
      it(`${atLimit.name} → 202`, async () => {
        const reply = await atLimit.send(keys);
        const bodyText = reply.body.toString("utf8");
        expect(reply.status, bodyText.slice(0, 300)).to.equal(202);
        expect(JSON.parse(bodyText)).to.include({
          status: "accepted",
          tenant_id: TENANT_A,
          log_id: atLimit.logId,
        });
        accepted.add(atLimit.logId);
      });
    }
  });

  describe("after the table", () => {
    it("still accepts a valid record", async () => {
      const logId = acceptedLogId("after-table");
      const reply = await rawJsonPost(JSON.stringify({ log_id: logId, text: text(0) }))(keys);
      expect(reply.status, reply.body.toString()).to.equal(202);
      expect(reply.headers["content-type"]).to.match(/^application\/json/);
      accepted.add(logId);
    });

    it("answers many concurrent requests with one key, each by its own tenant_id", async () => {
      const requests = Array.from({ length: 80 }, (_, i) => {
        const own = i % 8 !== 0;
        const logId = own ? acceptedLogId(`c${i}`) : hostileLogId(1000 + i);
        const fields = {
          log_id: logId,
          text: text(1000 + i),
          tenant_id: own ? TENANT_A : TENANT_B,
        };
        return rawJsonPost(JSON.stringify(fields))(keys).then((reply) => ({ own, logId, reply }));
      });
      const results = await Promise.all(requests);
      for (const { own, logId, reply } of results) {
        expect(reply.status, `${logId}: ${reply.body.toString().slice(0, 200)}`).to.equal(
          own ? 202 : 403,
        );
        if (own) accepted.add(logId);
      }
      expect(results.filter((r) => r.own)).to.have.length(70);
      await ping();
    });

    it("stops accepting a key within API_KEY_CACHE_SECONDS of its revocation", async () => {
      const apiKeys = createFirestoreApiKeys(firestore);
      const created = await apiKeys.create(TENANT_A, "hostile revoke-after-use");
      const logId = acceptedLogId("before-revoke");
      const send = (n: number, id = hostileLogId(n)) =>
        rawJsonPost(JSON.stringify({ log_id: id, text: text(n) }), undefined, {
          authorization: `Bearer ${created.key}`,
        })(keys);

      const first = await send(0, logId);
      expect(first.status).to.equal(202);
      accepted.add(logId);
      await apiKeys.revoke(TENANT_A, created.key_id);
      const revokedAt = Date.now();
      // The bound: the cache time, plus a second for the lookup and a busy machine.
      const bound = LIMITS.API_KEY_CACHE_SECONDS * 1000 + 1000;
      let attempt = 0;
      const refused = await pollUntil(
        async () => {
          attempt += 1;
          const id = acceptedLogId(`revoke-${attempt}`);
          const sentAt = Date.now();
          const reply = await send(2000, id);
          if (reply.status === 202) {
            // Allowed only inside the documented bound, and then it is a stored record.
            expect(sentAt - revokedAt, "a revoked key accepted after the bound").to.be.below(bound);
            accepted.add(id);
            return undefined;
          }
          return reply.status === 401 ? reply : undefined;
        },
        { timeoutMs: bound + 5_000, intervalMs: 100, what: "the revoked key to be refused" },
      );
      expect(refused.headers["content-type"]).to.match(/^application\/problem\+json/);
      expect((await send(2001)).status).to.equal(401);
    }).timeout(30_000);

    it("wrote nothing outside the caller's tenant and nothing for any hostile log id", async () => {
      expect(accepted.size).to.be.at.least(70);
      const db = firestore;
      // Every accepted record reaches Firestore (the worker is asynchronous).
      await pollUntil(
        async (note) => {
          const missing: string[] = [];
          for (const logId of accepted) {
            const [processed, failed] = await Promise.all([
              db.doc(`tenants/${TENANT_A}/processed_logs/${logId}`).get(),
              db.doc(`tenants/${TENANT_A}/failed_logs/${logId}`).get(),
            ]);
            if (!processed.exists && !failed.exists) missing.push(logId);
          }
          note(
            `${missing.length} accepted records not stored yet: ${missing.slice(0, 3).join(", ")}`,
          );
          return missing.length === 0 ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500, what: "the accepted records in Firestore" },
      );
      // A grace period in which a wrongly published hostile record would land too.
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      const after_ = await scanFirestore(db);
      const created = [...after_].filter((path) => !before_.has(path));
      const tenantPrefix = `tenants/${TENANT_A}/`;
      // The root collection `tenants` appears with the first tenant's document of the run.
      const outside = created.filter(
        (path) => !path.startsWith(tenantPrefix) && path !== "collection:tenants",
      );
      expect(outside, "documents or collections created outside the caller's tenant").to.deep.equal(
        [],
      );
      const hostileDocs = created.filter((path) => path.includes(`hx-${RUN}`));
      expect(hostileDocs, "documents of hostile requests").to.deep.equal([]);
      // Exactly the accepted records, each once, in the tenant's processed or failed logs.
      const stored = created
        .filter((path) => path.startsWith(tenantPrefix))
        .map((path) => path.slice(tenantPrefix.length));
      for (const path of stored) {
        expect(path).to.match(/^(processed_logs|failed_logs)\/[^/]+$/);
      }
      expect(new Set(stored.map((path) => path.split("/")[1]))).to.deep.equal(accepted);
      // Nothing at all for tenant B, nor for any tenant a hostile request named.
      expect([...after_].filter((path) => path.startsWith(`tenants/${TENANT_B}`))).to.deep.equal(
        [],
      );
    });

    it("logs no API key, Authorization value or record text", async () => {
      const logs = {
        ingest: await stack.readLog("ingest"),
        process: await stack.readLog("process"),
      };
      // The suite did log: rejections at ingest, stored records in the worker.
      expect(logs.ingest).to.include("rejected");
      expect(logs.process).to.include('"record stored"');
      for (const [name, log] of Object.entries(logs)) {
        expect(log, `${name} log: an API key`).to.not.include("rdpk_");
        for (const key of Object.values(keys)) {
          expect(log, `${name} log: a key secret`).to.not.include(key.slice("rdpk_".length));
        }
        expect(log, `${name} log: a Bearer credential`).to.not.match(/bearer\s+\S/i);
        expect(log, `${name} log: an Authorization header`).to.not.match(
          /authorization["']?\s*[:=]/i,
        );
        expect(log, `${name} log: an X-API-Key header`).to.not.match(/x-api-key["']?\s*[:=]/i);
        const leaks = log.split("\n").filter((line) => line.includes(MARKER));
        expect(leaks, `${name} log: lines with record text`).to.deep.equal([]);
      }
    });

    it("ran every case, against the run's shared emulators", () => {
      expect(stack.topic).to.equal(`rdp-${RUN_ID}-hostile`);
      expect(hostileStatuses.size).to.equal(HOSTILE.length);
    });
  });
});
