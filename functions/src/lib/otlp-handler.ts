/**
 * OTLP/HTTP logs (`POST /v1/logs`): an OpenTelemetry exporter's ExportLogsServiceRequest,
 * protobuf or JSON, authenticated by the same API keys. Each LogRecord becomes one record of
 * the pipeline, with a log id an exporter's retry of the same batch reproduces, so a resent
 * batch is stored once. Answers follow the specification: 200 with partial_success where
 * records were refused, a google.rpc.Status encoded like the request otherwise, and
 * Retry-After on the retryable statuses.
 */
import { checkEncodingAndLength } from "./body-gate";
import { encodeRecord, type EncodedRecord } from "./coalescer";
import {
  BadRequestError,
  MethodNotAllowedError,
  PayloadTooLargeError,
  PublishUnconfirmedError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
} from "./errors";
import { headerValue, parseMediaType, type IncomingHeaders, type IngestResponse } from "./http";
import type { IngestDeps, PreflightRequest } from "./ingest-handler";
import { admitRecords } from "./rate-limit";
import { errorFields } from "./logger";
import {
  DEFAULT_OTLP_LIMITS,
  OTLP_JSON,
  OTLP_PROTOBUF,
  decodeExportLogsRequest,
  encodeExportLogsResponse,
  otlpMediaType,
  summariseRejections,
  toOtlpErrorResponse,
  type OtlpMediaType,
  type OtlpRejection,
} from "./otlp";

const OTLP_MEDIA_TYPES = [OTLP_PROTOBUF, OTLP_JSON] as const;

function requestMediaType(headers: IncomingHeaders): OtlpMediaType | undefined {
  return otlpMediaType(parseMediaType(headerValue(headers, "content-type"))?.essence);
}

/** The checks of `/v1/logs` that need no body, for the body gate and the handler alike. */
export function otlpPreflight(
  request: PreflightRequest,
  deps: Pick<IngestDeps, "authenticator" | "config">,
): void {
  if (request.method !== "POST") throw new MethodNotAllowedError(request.method);
  deps.authenticator.checkPresented(request.headers);
  if (requestMediaType(request.headers) === undefined) {
    throw new UnsupportedMediaTypeError(
      `OTLP/HTTP logs are ${OTLP_MEDIA_TYPES.join(" or ")}`,
      OTLP_MEDIA_TYPES,
    );
  }
  checkEncodingAndLength(request.headers, deps.config.maxBatchBodyBytes);
}

export async function handleOtlpLogs(
  request: PreflightRequest & { readonly rawBody: Buffer | undefined },
  deps: IngestDeps,
): Promise<IngestResponse> {
  // Errors are encoded like the request; one in neither encoding gets protobuf, the default.
  const mediaType = requestMediaType(request.headers) ?? OTLP_PROTOBUF;
  try {
    otlpPreflight(request, deps);
    const { tenantId } = await deps.authenticator.authenticate(request.headers);
    if (tenantId === null) {
      throw new BadRequestError(
        "missing-tenant",
        "OTLP requests name their tenant by API key, which the open demo mode does not have",
      );
    }
    const body = request.rawBody ?? Buffer.alloc(0);
    if (body.length > deps.config.maxBatchBodyBytes) {
      throw new PayloadTooLargeError(
        `The body is ${body.length} bytes; the limit is ${deps.config.maxBatchBodyBytes}`,
      );
    }
    const decoded = decodeExportLogsRequest(body, mediaType, tenantId, {
      ...DEFAULT_OTLP_LIMITS,
      maxRecords: deps.config.maxBatchRecords,
      maxTextChars: deps.config.maxTextChars,
    });
    // Every LogRecord counts, and the request is admitted or refused whole (429 + Retry-After,
    // which OTLP exporters honour); a refused request is resent unchanged and stored once.
    const rateLimit = await admitRecords(
      deps.rateLimiter,
      tenantId,
      decoded.records.length + decoded.rejected.length,
    );
    const receivedAt = (deps.now?.() ?? new Date()).toISOString();
    const rejected: OtlpRejection[] = [...decoded.rejected];
    const encoded: EncodedRecord[] = [];
    for (const record of decoded.records) {
      try {
        encoded.push(
          encodeRecord(
            {
              tenant_id: tenantId,
              log_id: record.log_id,
              source: "otlp",
              text: record.text,
              received_at: receivedAt,
              otlp: record.otlp,
            },
            deps.config.maxMessageBytes,
          ),
        );
      } catch (error) {
        if (!(error instanceof PayloadTooLargeError)) throw error;
        rejected.push({ position: record.position, reason: error.message });
      }
    }
    if (encoded.length === 0 && rejected.length > 0) {
      throw new BadRequestError("otlp-rejected", summariseRejections(rejected));
    }

    const outcomes = await Promise.allSettled(deps.queue.enqueueAll(encoded));
    const unconfirmed = outcomes.flatMap((outcome) =>
      outcome.status === "rejected" ? [outcome.reason as unknown] : [],
    );
    const other = unconfirmed.find((reason) => !(reason instanceof PublishUnconfirmedError));
    if (other !== undefined) throw other;
    if (unconfirmed.length > 0) {
      deps.logger.warn("otlp records not confirmed by Pub/Sub; in doubt", {
        tenant_id: tenantId,
        records: encoded.length,
        in_doubt: unconfirmed.length,
      });
      throw new ServiceUnavailableError(
        "not-confirmed",
        `${unconfirmed.length} of ${encoded.length} log records were not confirmed by the ` +
          "message queue and may still be stored",
        deps.config.retryAfterSeconds,
      );
    }
    deps.logger.info("otlp records accepted", {
      tenant_id: tenantId,
      records: encoded.length,
      rejected: rejected.length,
    });
    return {
      status: 200,
      headers: { "Content-Type": mediaType, ...rateLimit },
      body: encodeExportLogsResponse(
        { rejectedLogRecords: rejected.length, errorMessage: summariseRejections(rejected) },
        mediaType,
      ),
    };
  } catch (error) {
    const answer = toOtlpErrorResponse(error, mediaType);
    const log = answer.status >= 500 ? deps.logger.error : deps.logger.info;
    log("otlp request rejected", { status: answer.status, ...errorFields(error) });
    return answer;
  }
}
