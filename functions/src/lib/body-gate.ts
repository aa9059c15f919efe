/**
 * The body gate: reads every request body of the ingest instance before the Functions Framework
 * does, with bounds. The framework parses each body itself (body-parser, 1024 MB limit, gzip and
 * deflate inflated without bound) before the function runs, so one small compressed body or a
 * few large ones could exhaust the instance's memory. The gate refuses what it can from the
 * headers alone, streams the rest through a byte cap (on the wire and after inflation) and a
 * per-instance budget of buffered bytes, and hands the request on with `rawBody` set and its
 * stream consumed; body-parser then skips it, as it skips any request already read.
 */
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { createGunzip, createInflate, type Gunzip, type Inflate } from "node:zlib";
import {
  BadRequestError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedEncodingError,
  toProblemResponse,
} from "./errors";
import { headerValue, type IncomingHeaders } from "./http";

/** Content codings the gate inflates; any other is refused with 415. */
export const ACCEPTED_ENCODINGS = ["gzip", "deflate"] as const;
/** A refused body is read on and discarded up to this size so the client sees the answer. */
const MAX_DISCARDED_BYTES = 32 * 1024 * 1024;

/** What the gate knows of a request before its body. */
export interface GateRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHeaders;
}

export interface BodyGateOptions {
  /**
   * Checks that need no body (route, method, credentials, media type, declared length),
   * in the handler's own order; throws the error to answer with.
   */
  readonly preflight: (request: GateRequest) => void;
  /** Largest body, in bytes on the wire and once inflated, for this request. */
  readonly limitFor: (request: GateRequest) => number;
  /** Bytes this instance may hold in request bodies at once, wire and inflated together. */
  readonly maxBufferedBytes: number;
  readonly retryAfterSeconds: number;
  /** Told of every refusal, for the log; never given the body. */
  readonly onRefused?: (status: number, error: Error) => void;
}

export interface GatedRequest extends IncomingMessage {
  /** The body, inflated, as the frameworks name it; set by the gate before the app runs. */
  rawBody?: Buffer;
}

/**
 * Gates every HTTP server this process creates from now on. The Functions Framework loads the
 * function's module first and creates its server after, so a call at module load is in time.
 */
export function installBodyGate(options: BodyGateOptions): void {
  const createServer = http.createServer;
  http.createServer = ((...args: Parameters<typeof http.createServer>) => {
    const server = createServer(...args);
    for (const app of server.listeners("request") as RequestListener[]) {
      server.removeListener("request", app);
      server.on("request", gateRequests(app, options));
    }
    return server;
  }) as typeof http.createServer;
}

/** Wraps the app's request listener: the app only ever sees bounded, fully read bodies. */
export function gateRequests(app: RequestListener, options: BodyGateOptions): RequestListener {
  let buffered = 0;
  const budget = {
    take(bytes: number): boolean {
      if (buffered + bytes > options.maxBufferedBytes) return false;
      buffered += bytes;
      return true;
    },
    give(bytes: number): void {
      buffered -= bytes;
    },
  };
  return (req, res) => {
    let limit: number;
    try {
      const head = { method: req.method ?? "GET", path: pathOf(req), headers: req.headers };
      options.preflight(head);
      limit = options.limitFor(head);
      checkEncodingAndLength(req.headers, limit);
    } catch (error) {
      refuse(req, res, error as Error, options);
      return;
    }
    readBounded(req, limit, budget, options.retryAfterSeconds).then(
      ({ body, release }) => {
        (req as GatedRequest).rawBody = body;
        res.once("close", release);
        app(req, res);
      },
      (error: Error) => refuse(req, res, error, options),
    );
  };
}

function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  error: Error,
  options: BodyGateOptions,
): void {
  const problem = toProblemResponse(error, pathOf(req));
  options.onRefused?.(problem.status, error);
  if (res.headersSent || res.destroyed) return;
  // The answer goes out at once, but the response ends only once the rest of the body has been
  // read and discarded (bounded): ending it earlier closes a `Connection: close` client's
  // socket while it is still sending, and it never reads the answer.
  const body = JSON.stringify(problem.body);
  res.writeHead(problem.status, { ...problem.headers, "Content-Length": Buffer.byteLength(body) });
  res.write(body);
  if (req.complete) {
    res.end();
    return;
  }
  let discarded = 0;
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > MAX_DISCARDED_BYTES) req.socket.destroy();
  });
  req.once("end", () => res.end());
  req.resume();
}

/** The path, as express reads it; a request target no URL parser accepts keeps its raw form. */
function pathOf(req: IncomingMessage): string {
  const target = req.url ?? "/";
  try {
    return new URL(target, "http://gate").pathname;
  } catch {
    return target.split("?", 1)[0] ?? target;
  }
}

interface ByteBudget {
  take(bytes: number): boolean;
  give(bytes: number): void;
}

/** Reads the body into memory, counting every byte held against the limit and the budget. */
function readBounded(
  req: IncomingMessage,
  limit: number,
  budget: ByteBudget,
  retryAfterSeconds: number,
): Promise<{ body: Buffer; release: () => void }> {
  return new Promise((resolve, reject) => {
    const encoding = contentEncoding(req.headers);
    let inflater: Gunzip | Inflate | undefined;
    if (encoding === "gzip") inflater = createGunzip();
    else if (encoding === "deflate") inflater = createInflate();

    let held = 0;
    let wireBytes = 0;
    let bodyBytes = 0;
    const chunks: Buffer[] = [];
    let settled = false;
    const release = () => {
      budget.give(held);
      held = 0;
    };
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      release();
      inflater?.destroy();
      reject(error);
    };
    const hold = (bytes: number): boolean => {
      if (budget.take(bytes)) {
        held += bytes;
        return true;
      }
      fail(
        new ServiceUnavailableError(
          "ingest-busy",
          "This instance is holding as many request bodies as it may; nothing was accepted, " +
            "retry after the delay",
          retryAfterSeconds,
        ),
      );
      return false;
    };
    const tooLarge = (what: string) =>
      fail(new PayloadTooLargeError(`The body ${what} more than ${limit} bytes, the limit`));
    const onBodyChunk = (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (bodyBytes > limit) return tooLarge(inflater ? "inflates to" : "is");
      if (hold(chunk.length)) chunks.push(chunk);
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      resolve({ body: Buffer.concat(chunks, bodyBytes), release });
    };

    req.on("data", (chunk: Buffer) => {
      if (settled) return;
      wireBytes += chunk.length;
      if (wireBytes > limit) return tooLarge("is");
      if (!inflater) return onBodyChunk(chunk);
      // The compressed bytes are held until inflated; a bomb stops at the inflated limit.
      if (!hold(chunk.length)) return;
      inflater.write(chunk, () => {
        if (settled) return;
        held -= chunk.length;
        budget.give(chunk.length);
      });
    });
    req.on("error", fail);
    req.on("aborted", () => fail(new BadRequestError("aborted", "The client aborted the upload")));
    if (inflater) {
      inflater.on("data", onBodyChunk);
      inflater.on("end", finish);
      inflater.on("error", () =>
        fail(
          new BadRequestError(
            "malformed-encoding",
            `The body is not valid ${encoding} data (Content-Encoding: ${encoding})`,
          ),
        ),
      );
      req.on("end", () => inflater.end());
    } else {
      req.on("end", finish);
    }
  });
}

/** The single content coding of the body, or undefined for none ("identity"). */
function contentEncoding(headers: IncomingHeaders): "gzip" | "deflate" | undefined {
  const value = headerValue(headers, "content-encoding")?.trim().toLowerCase();
  if (value === undefined || value === "" || value === "identity") return undefined;
  if (value === "gzip" || value === "x-gzip") return "gzip";
  if (value === "deflate") return "deflate";
  throw new UnsupportedEncodingError(
    `Content-Encoding ${value} is not accepted; send ${ACCEPTED_ENCODINGS.join(" or ")}, ` +
      "or an uncompressed body",
    ACCEPTED_ENCODINGS,
  );
}

/** The header-only part of the gate's checks, shared with the handler's preflight. */
export function checkEncodingAndLength(headers: IncomingHeaders, limit: number): void {
  contentEncoding(headers);
  const declared = headerValue(headers, "content-length");
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > limit) {
    throw new PayloadTooLargeError(`The body is ${declared} bytes; the limit is ${limit}`);
  }
}
