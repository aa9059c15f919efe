/**
 * Structured logs in the shape Cloud Logging parses from stdout: one JSON object a
 * line with `severity` and `message`; ids travel as fields so they can be filtered.
 * Callers pass ids and counts, never record text, keys or headers.
 */

export type Severity = "DEBUG" | "INFO" | "WARNING" | "ERROR";

export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /**
   * One record accepted or stored. Cloud Logging bills by volume and a line per record is most
   * of it, so this writes a DEBUG line "record <outcome>" only where the operator turned
   * LOG_RECORD_SUCCESS on; it is always counted for the periodic summary (diagnostics.ts).
   */
  recordSuccess(outcome: RecordOutcome, fields: LogFields): void;
  /** Records counted by recordSuccess since the last call, e.g. `{ records_stored: 812 }`. */
  takeRecordCounts(): Record<string, number>;
}

export type RecordOutcome = "accepted" | "stored";

export type LogSink = (line: string) => void;

const writeStdout: LogSink = (line) => {
  process.stdout.write(line + "\n");
};

export function createLogger(
  sink: LogSink = writeStdout,
  options: { readonly logRecordSuccess?: boolean } = {},
): Logger {
  const emit = (severity: Severity, message: string, fields: LogFields = {}) => {
    sink(JSON.stringify({ severity, message, ...fields }));
  };
  let counts: Record<string, number> = {};
  return {
    debug: (message, fields) => emit("DEBUG", message, fields),
    info: (message, fields) => emit("INFO", message, fields),
    warn: (message, fields) => emit("WARNING", message, fields),
    error: (message, fields) => emit("ERROR", message, fields),
    recordSuccess: (outcome, fields) => {
      const key = `records_${outcome}`;
      counts[key] = (counts[key] ?? 0) + 1;
      if (options.logRecordSuccess === true) emit("DEBUG", `record ${outcome}`, fields);
    },
    takeRecordCounts: () => {
      const taken = counts;
      counts = {};
      return taken;
    },
  };
}

/** The name and code of an error, safe to log: never its message, which may quote input. */
export function errorFields(error: unknown): LogFields {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      error_name: error.name,
      error_code: typeof code === "string" || typeof code === "number" ? code : undefined,
    };
  }
  return { error_name: typeof error };
}
