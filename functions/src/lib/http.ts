/** The framework-independent shape of an HTTP exchange at the ingest edge. */

export type IncomingHeaders = Readonly<Record<string, string | string[] | undefined>>;

export interface IngestRequest {
  readonly method: string;
  readonly path: string;
  /** Header names in lower case, as Node.js delivers them. */
  readonly headers: IncomingHeaders;
  /** The body exactly as received; the frameworks keep it as `rawBody`. */
  readonly rawBody: Buffer | undefined;
}

export interface IngestResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Sent as JSON, or as is when already encoded (an OTLP protobuf answer). */
  readonly body: unknown;
}

/** One value of a header; a repeated header is ambiguous and reads as its first value. */
export function headerValue(headers: IncomingHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export interface MediaType {
  readonly essence: string;
  readonly charset: string | undefined;
}

export function parseMediaType(contentType: string | undefined): MediaType | undefined {
  if (contentType === undefined || contentType.trim() === "") return undefined;
  const [essence = "", ...parameters] = contentType.split(";");
  let charset: string | undefined;
  for (const parameter of parameters) {
    const [name, value] = parameter.split("=", 2);
    if (name?.trim().toLowerCase() === "charset" && value !== undefined) {
      charset = value
        .trim()
        .replace(/^"(.*)"$/, "$1")
        .toLowerCase();
    }
  }
  return { essence: essence.trim().toLowerCase(), charset };
}
