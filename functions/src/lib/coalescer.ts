/**
 * Packs records that arrive within a short window into one Pub/Sub message. Every
 * caller still waits for the acknowledgement of the message that carries its own
 * record, so a 202 keeps its meaning; the worker then receives one push for many
 * records, which is what bounds throughput on push subscriptions.
 */
import { PayloadTooLargeError } from "./errors";
import type { MessagePublisher } from "./publisher";
import { MAX_RECORDS_PER_MESSAGE, type PipelineRecord } from "./schema";

/** A record already serialised as JSON, with the ids used for message attributes. */
export interface EncodedRecord {
  readonly tenantId: string;
  readonly logId: string;
  readonly json: string;
}

const MESSAGE_HEAD = '{"v":1,"records":[';
const MESSAGE_TAIL = "]}";
export const MESSAGE_OVERHEAD_BYTES = MESSAGE_HEAD.length + MESSAGE_TAIL.length;

/** Encodes one record, refusing any that could not fit in a message on its own. */
export function encodeRecord(record: PipelineRecord, maxMessageBytes: number): EncodedRecord {
  const json = JSON.stringify(record);
  const size = Buffer.byteLength(json) + MESSAGE_OVERHEAD_BYTES;
  if (size > maxMessageBytes) {
    throw new PayloadTooLargeError(
      `The record takes ${size} bytes once encoded for the queue; the limit is ` +
        `${maxMessageBytes} (text with many control characters grows when escaped)`,
    );
  }
  return { tenantId: record.tenant_id, logId: record.log_id, json };
}

/** The PipelineMessage of these records, built from their encodings without re-encoding. */
export function encodeMessage(records: readonly EncodedRecord[]): Buffer {
  return Buffer.from(MESSAGE_HEAD + records.map((record) => record.json).join(",") + MESSAGE_TAIL);
}

/** Attributes for operators' filtering: the ids when the message carries one record. */
export function messageAttributes(records: readonly EncodedRecord[]): Record<string, string> {
  const [only] = records;
  return records.length === 1 && only
    ? { tenant_id: only.tenantId, log_id: only.logId }
    : { records: String(records.length) };
}

export interface RecordQueue {
  /** Resolves with the id of the acknowledged message that carries the record. */
  enqueue(record: EncodedRecord): Promise<string>;
  /** The same for records that arrived together (a batch): they are sent without waiting. */
  enqueueAll(records: readonly EncodedRecord[]): Promise<string>[];
}

interface Waiting {
  readonly record: EncodedRecord;
  readonly resolve: (messageId: string) => void;
  readonly reject: (error: unknown) => void;
}

export function createCoalescingQueue(
  publisher: MessagePublisher,
  options: { readonly windowMs: number; readonly maxMessageBytes: number },
): RecordQueue {
  let waiting: Waiting[] = [];
  let waitingBytes = MESSAGE_OVERHEAD_BYTES;
  let timer: NodeJS.Timeout | undefined;
  let publishing = 0;

  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting;
    waiting = [];
    waitingBytes = MESSAGE_OVERHEAD_BYTES;
    if (batch.length === 0) return;
    const records = batch.map((entry) => entry.record);
    publishing += 1;
    publisher
      .publish(encodeMessage(records), messageAttributes(records))
      .then(
        (messageId) => batch.forEach((entry) => entry.resolve(messageId)),
        (error: unknown) => batch.forEach((entry) => entry.reject(error)),
      )
      .finally(() => {
        publishing -= 1;
        // Group commit: what gathered while Pub/Sub was busy goes out as soon as it is free.
        if (publishing === 0 && waiting.length > 0) flush();
      });
  };

  const add = (record: EncodedRecord) =>
    new Promise<string>((resolve, reject) => {
      const recordBytes = Buffer.byteLength(record.json) + 1;
      const full =
        waitingBytes + recordBytes > options.maxMessageBytes ||
        waiting.length >= MAX_RECORDS_PER_MESSAGE;
      if (full) flush();
      waiting.push({ record, resolve, reject });
      waitingBytes += recordBytes;
    });

  return {
    enqueue(record) {
      const messageId = add(record);
      // A record that finds Pub/Sub idle has nothing to wait for; under load, records gather
      // while a publish is in flight, for at most the window.
      if (options.windowMs === 0 || publishing === 0) flush();
      else timer ??= setTimeout(flush, options.windowMs);
      return messageId;
    },
    enqueueAll(records) {
      const messageIds = records.map(add);
      flush();
      return messageIds;
    },
  };
}
