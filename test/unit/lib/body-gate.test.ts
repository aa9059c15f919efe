import { expect } from "chai";
import { randomBytes } from "node:crypto";
import http, { type IncomingMessage, type RequestListener } from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { constants, gzipSync, deflateSync } from "node:zlib";
import {
  type BodyGateOptions,
  type GatedRequest,
  gateRequests,
} from "../../../functions/src/lib/body-gate";
import { UnauthorizedError } from "../../../functions/src/lib/errors";

const LIMIT = 512 * 1024;
/** zlib options for a bomb of one repeated byte. */
const RUNS = { level: 1, strategy: constants.Z_RLE };

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/** A server whose app records the bodies it is handed; the gate sits in front of it. */
async function gatedServer(options: Partial<BodyGateOptions> = {}) {
  const seen: Buffer[] = [];
  let hold: Promise<void> | undefined;
  const app: RequestListener = (req, res) => {
    seen.push((req as GatedRequest).rawBody ?? Buffer.alloc(0));
    void (hold ?? Promise.resolve()).then(() => {
      res.writeHead(202, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ bytes: (req as GatedRequest).rawBody?.length }));
    });
  };
  const refused: number[] = [];
  const server = http.createServer(
    gateRequests(app, {
      preflight: ({ headers }) => {
        if (!headers.authorization) throw new UnauthorizedError("a key is required");
      },
      limitFor: () => LIMIT,
      maxBufferedBytes: 16 * LIMIT,
      retryAfterSeconds: 3,
      onRefused: (status) => refused.push(status),
      ...options,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const send = (body: Buffer | Readable, headers: Record<string, string> = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/",
          headers: { authorization: "Bearer k", ...headers },
        },
        (response: IncomingMessage) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"),
            }),
          );
        },
      );
      // The server may answer and close while a refused body is still being sent.
      request.on("error", reject);
      if (Buffer.isBuffer(body)) request.end(body);
      else body.pipe(request);
    });

  return {
    port,
    send,
    seen,
    refused,
    holdApp: () => {
      let release!: () => void;
      hold = new Promise((resolve) => (release = resolve));
      return () => {
        hold = undefined;
        release();
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A stream of `total` bytes in chunks, without Content-Length (chunked encoding). */
function chunked(total: number, chunk = 16 * 1024): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const size = Math.min(chunk, total - sent);
      sent += size;
      this.push(Buffer.alloc(size, 0x61));
    },
  });
}

describe("body gate", () => {
  let server: Awaited<ReturnType<typeof gatedServer>>;
  afterEach(async () => server?.close());

  it("hands the app the body, read in full", async () => {
    server = await gatedServer();
    const answer = await server.send(Buffer.from("hello"));
    expect(answer.status).to.equal(202);
    expect(server.seen.map((body) => body.toString())).to.deep.equal(["hello"]);
  });

  for (const [name, encode] of [
    ["gzip", gzipSync],
    ["deflate", deflateSync],
  ] as const) {
    it(`inflates a ${name} body within the limit`, async () => {
      server = await gatedServer();
      const text = "line of log text\n".repeat(1000);
      const answer = await server.send(encode(text), { "content-encoding": name });
      expect(answer.status).to.equal(202);
      expect(server.seen[0]?.toString()).to.equal(text);
    });

    it(`refuses a ${name} bomb with 413 as soon as it inflates past the limit`, async () => {
      server = await gatedServer();
      // About 50 KB that inflate to 50 MB (run-length matching: as small, in half the CPU).
      const bomb = encode(Buffer.alloc(50 * 1024 * 1024), RUNS);
      expect(bomb.length).to.be.below(LIMIT);
      const before = process.memoryUsage().rss;
      const answer = await server.send(bomb, { "content-encoding": name });
      expect(answer.status).to.equal(413);
      expect(answer.body).to.include({ type: "urn:rdp:problem:payload-too-large" });
      expect(String(answer.body.detail)).to.include("inflates to more than");
      expect(server.seen).to.have.length(0);
      // What the gate held stays near the limit, far from the inflated size.
      expect(process.memoryUsage().rss - before).to.be.below(64 * 1024 * 1024);
    });
  }

  it("refuses a body that is not valid gzip with 400", async () => {
    server = await gatedServer();
    const text = randomBytes(4000).toString("hex");
    const truncated = gzipSync(text).subarray(0, 1000);
    const answer = await server.send(truncated, { "content-encoding": "gzip" });
    expect(answer.status).to.equal(400);
    expect(answer.body).to.include({ type: "urn:rdp:problem:malformed-encoding" });
  });

  it("refuses an encoding it cannot inflate with 415 and lists those it can", async () => {
    server = await gatedServer();
    for (const encoding of ["br", "zstd", "gzip, gzip", "compress"]) {
      const answer = await server.send(Buffer.from("x"), { "content-encoding": encoding });
      expect(answer.status, encoding).to.equal(415);
      expect(answer.headers["accept-encoding"]).to.equal("gzip, deflate");
    }
    expect(server.seen).to.have.length(0);
  });

  it("refuses a declared length over the limit before reading the body", async () => {
    server = await gatedServer();
    const answer = await server.send(Buffer.alloc(4 * LIMIT, 0x61));
    expect(answer.status).to.equal(413);
    expect(String(answer.body.detail)).to.match(new RegExp(`is ${4 * LIMIT} bytes`));
    expect(server.seen).to.have.length(0);
  });

  it("refuses a chunked body without a length once it passes the limit", async () => {
    server = await gatedServer();
    const answer = await server.send(chunked(8 * LIMIT));
    expect(answer.status).to.equal(413);
    expect(server.seen).to.have.length(0);
  });

  it("answers the preflight's refusal without reading the body", async () => {
    server = await gatedServer();
    const answer = await server.send(Buffer.alloc(1024 * 1024), { authorization: "" });
    expect(answer.status).to.equal(401);
    expect(answer.headers["www-authenticate"]).to.equal('Bearer realm="ingest"');
    expect(server.refused).to.deep.equal([401]);
  });

  it("answers 503 with Retry-After once the instance holds its budget of bodies", async () => {
    server = await gatedServer({ maxBufferedBytes: 2 * LIMIT });
    const release = server.holdApp();
    const held = [server.send(Buffer.alloc(LIMIT, 1)), server.send(Buffer.alloc(LIMIT, 2))];
    // Wait until both bodies are held by the app, then one more cannot fit.
    while (server.seen.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    const refused = await server.send(Buffer.alloc(LIMIT, 3));
    expect(refused.status).to.equal(503);
    expect(refused.headers["retry-after"]).to.equal("3");
    expect(refused.body).to.include({ type: "urn:rdp:problem:ingest-busy" });
    release();
    expect((await Promise.all(held)).map((answer) => answer.status)).to.deep.equal([202, 202]);
    // Answered bodies give their bytes back.
    expect((await server.send(Buffer.alloc(LIMIT, 4))).status).to.equal(202);
  });

  it("answers a request target no URL parser accepts instead of throwing", async () => {
    server = await gatedServer();
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.end("POST http://[ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      });
      let text = "";
      socket.on("data", (chunk) => (text += chunk.toString()));
      socket.on("close", () => resolve(text));
    });
    expect(reply).to.match(/^HTTP\/1\.1 401 /);
    expect((await server.send(Buffer.from("still here"))).status).to.equal(202);
  });

  it("keeps serving after every kind of refusal", async () => {
    server = await gatedServer();
    await server.send(gzipSync(Buffer.alloc(10 * 1024 * 1024), RUNS), {
      "content-encoding": "gzip",
    });
    await server.send(chunked(4 * LIMIT));
    await server.send(Buffer.from("x"), { "content-encoding": "br" });
    const answer = await server.send(Buffer.from("still here"));
    expect(answer.status).to.equal(202);
    expect(server.seen.at(-1)?.toString()).to.equal("still here");
  });
});
