/**
 * Express, inside the Functions Framework, prints every body-parser error with
 * console.error before our handler runs. For malformed JSON that print carries
 * V8's parse message, which quotes the start of the body: record text in the logs.
 * This replaces exactly those prints with one structured line without the body.
 */
import type { Logger } from "./logger";

interface BodyParserError extends Error {
  readonly status: number;
  /** body-parser's error kind, e.g. "entity.parse.failed". */
  readonly type: string;
}

function isBodyParserError(value: unknown): value is BodyParserError {
  if (!(value instanceof Error)) return false;
  const { status, type } = value as Partial<BodyParserError>;
  return typeof status === "number" && status >= 400 && status < 500 && typeof type === "string";
}

export function guardFrameworkErrorLogs(logger: Logger): void {
  const print = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    const [first] = args;
    // Express 5's default error handler prints the error object itself.
    if (args.length === 1 && isBodyParserError(first)) {
      logger.info("request rejected by the framework's body parser", {
        status: first.status,
        error_type: first.type,
      });
      return;
    }
    print(...args);
  };
}
