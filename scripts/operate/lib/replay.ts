/**
 * Replay: re-drives records kept in failed_logs and messages held on the dead-letter subscription
 * through the normal publish path (the ingest topic, the pipeline envelope, the original log_ids).
 * The worker's create-if-absent makes a replay idempotent. A failure entry is deleted, and a dead
 * letter acked, only once each of its records is found stored with its own text; anything else
 * stays where it is and counts as still failing.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type DocumentReference, type Firestore, Timestamp } from "@google-cloud/firestore";
import { type PubSub, v1 } from "@google-cloud/pubsub";
import {
  encodeMessage,
  encodeRecord,
  messageAttributes,
} from "../../../functions/src/lib/coalescer";
import { FAILED_LOGS, TENANTS, processedLogPath } from "../../../functions/src/lib/paths";
import type { MessagePublisher } from "../../../functions/src/lib/publisher";
import type { PipelineRecord, Validators } from "../../../functions/src/lib/schema";
import type { FailureReason } from "../../../functions/src/lib/store";
import { tenantIds } from "./operator-cli";
import { sha256Hex } from "./reconcile";

// A record keyed by the union, so the compiler notices a reason added to the worker.
const REASONS: Record<FailureReason, true> = {
  invalid_message: true,
  invalid_record: true,
  expired: true,
  log_id_conflict: true,
  rejected_by_store: true,
  retries_exhausted: true,
};
export const FAILURE_REASONS: readonly string[] = Object.keys(REASONS);

/** Reasons whose record itself fails the pipeline schema: a replay would fail the same way. */
const NOT_REPLAYABLE = new Set(["invalid_record", "invalid_message"]);

export type Outcome = "replayed" | "already_stored" | "still_failing";

type ReplayRecord = PipelineRecord & { readonly sha256: string };

export interface ReplayItem {
  /** The failure entry's path, or the dead letter's message id. */
  readonly label: string;
  readonly records: readonly ReplayRecord[];
  readonly message: { readonly data: Buffer; readonly attributes: Record<string, string> };
  /** Why it cannot be replayed as it stands; such an item is left as it is. */
  readonly problem?: string;
  /** Deletes the failure entry or acks the dead letter; called once every record is stored. */
  settle(): Promise<void>;
}

export interface ItemResult {
  readonly label: string;
  /** One outcome per record (one for an item whose records cannot be read). */
  readonly outcomes: readonly Outcome[];
  readonly why?: string;
}

const storedKey = (record: PipelineRecord) => processedLogPath(record.tenant_id, record.log_id);

/** The text hash stored under each record's processed path (null: absent). */
async function storedShas(firestore: Firestore, paths: readonly string[]) {
  const refs = [...new Set(paths)].map((path) => firestore.doc(path));
  const snapshots = refs.length === 0 ? [] : await firestore.getAll(...refs);
  return new Map(
    snapshots.map((snapshot) => [
      snapshot.ref.path,
      snapshot.exists ? (snapshot.get("text_sha256") as string | null) : null,
    ]),
  );
}

/**
 * Replays one chunk of items: pre-check, publish what is absent, wait (at most `waitMs`) until it
 * is stored, settle what is stored.
 */
export async function replayChunk(
  items: readonly ReplayItem[],
  deps: { firestore: Firestore; publisher: MessagePublisher; dryRun: boolean; waitMs: number },
): Promise<ItemResult[]> {
  const { firestore, dryRun } = deps;
  const replayable = items.filter((item) => item.problem === undefined);
  const keys = replayable.flatMap((item) => item.records.map(storedKey));
  const before = await storedShas(firestore, keys);
  const absent = (record: ReplayRecord) => !before.get(storedKey(record));
  const toPublish = dryRun ? [] : replayable.filter((item) => item.records.some(absent));
  const unpublished = new Map<ReplayItem, string>();
  await Promise.all(
    toPublish.map((item) =>
      deps.publisher
        .publish(item.message.data, item.message.attributes)
        .catch((error: Error) => unpublished.set(item, error.message)),
    ),
  );
  const awaited = toPublish
    .filter((item) => !unpublished.has(item))
    .flatMap((item) => item.records.filter(absent));
  const deadline = Date.now() + deps.waitMs;
  let after = before;
  while (awaited.length > 0) {
    after = await storedShas(firestore, awaited.map(storedKey));
    const stored = awaited.every((record) => after.get(storedKey(record)) === record.sha256);
    if (stored || Date.now() >= deadline) break;
    await sleep(500);
  }

  const judge = (item: ReplayItem, record: ReplayRecord): [Outcome, string?] => {
    if (item.problem !== undefined) return ["still_failing", item.problem];
    const stored = before.get(storedKey(record));
    if (stored === record.sha256) return ["already_stored"];
    if (stored)
      return ["still_failing", "another text is stored under this log_id: erase it first"];
    if (dryRun || after.get(storedKey(record)) === record.sha256) return ["replayed"];
    return ["still_failing", unpublished.get(item) ?? `not stored within ${deps.waitMs / 1000} s`];
  };
  return Promise.all(
    items.map(async (item): Promise<ItemResult> => {
      // An item without readable records counts once, as still failing.
      const judged: [Outcome, string?][] =
        item.records.length > 0
          ? item.records.map((record) => judge(item, record))
          : [["still_failing", item.problem]];
      const whys = [...new Set(judged.flatMap(([, why]) => (why ? [why] : [])))];
      if (!dryRun && whys.length === 0) await item.settle();
      return {
        label: item.label,
        outcomes: judged.map(([outcome]) => outcome),
        ...(whys.length > 0 ? { why: whys.join("; ") } : {}),
      };
    }),
  );
}

/** The failure entries the filters select (every tenant when none is named; failed_at bounds). */
export async function selectFailures(
  firestore: Firestore,
  filters: { tenants: readonly string[]; reasons: readonly string[]; since?: Date; until?: Date },
): Promise<DocumentReference[]> {
  const tenants = filters.tenants.length > 0 ? filters.tenants : await tenantIds(firestore);
  const selected: DocumentReference[] = [];
  for (const tenant of tenants) {
    // Filtered here: failed_at is exempt from indexing, and failures are few.
    const collection = firestore.collection(`${TENANTS}/${tenant}/${FAILED_LOGS}`);
    for (const doc of (await collection.select("reason", "failed_at").get()).docs) {
      const failedAt = (doc.get("failed_at") as Timestamp | null)?.toMillis() ?? 0;
      const reason = doc.get("reason") as string;
      if (filters.reasons.length > 0 && !filters.reasons.includes(reason)) continue;
      if (filters.since && failedAt < filters.since.getTime()) continue;
      if (filters.until && failedAt >= filters.until.getTime()) continue;
      selected.push(doc.ref);
    }
  }
  return selected;
}

/** A failure entry as an item: the record rebuilt from what the entry keeps. */
export async function failureItems(
  firestore: Firestore,
  refs: readonly DocumentReference[],
  validators: Validators,
  maxMessageBytes: number,
): Promise<ReplayItem[]> {
  const snapshots = refs.length === 0 ? [] : await firestore.getAll(...refs);
  return snapshots
    .filter((snapshot) => snapshot.exists)
    .map((snapshot) => {
      const entry = snapshot.data() ?? {};
      const record = {
        tenant_id: entry.tenant_id as string,
        log_id: entry.log_id as string,
        source: entry.source,
        text: entry.original_text,
        received_at: (entry.received_at as Timestamp | null)?.toDate().toISOString(),
      };
      const item = {
        label: snapshot.ref.path,
        records: [],
        message: { data: Buffer.alloc(0), attributes: {} },
        settle: () => snapshot.ref.delete().then(() => undefined),
      };
      if (NOT_REPLAYABLE.has(entry.reason as string)) {
        const problem = "the record fails the pipeline schema; a replay fails the same way";
        return { ...item, problem: `${entry.reason}: ${problem}` };
      }
      if (!validators.pipelineRecord(record)) {
        const problem = "the entry does not keep a complete, valid record (text, source, time)";
        return { ...item, problem };
      }
      const encoded = encodeRecord(record, maxMessageBytes);
      return {
        ...item,
        records: [{ ...record, sha256: sha256Hex(record.text) }],
        message: { data: encodeMessage([encoded]), attributes: messageAttributes([encoded]) },
      };
    });
}

type ReceivedMessage = {
  ackId: string;
  messageId: string;
  data: Buffer;
  attributes: Record<string, string>;
};

/**
 * The dead-letter subscription, pulled without acking: what is pulled stays leased (up to
 * ten minutes) until acked or released, so one pass sees each message once.
 */
export class DeadLetterQueue {
  private readonly leased = new Set<string>();
  private readonly seen = new Set<string>();

  private constructor(
    private readonly client: v1.SubscriberClient,
    readonly subscription: string,
  ) {}

  static async open(pubsub: PubSub, name: string): Promise<DeadLetterQueue> {
    const subscription = pubsub.subscription(name);
    const [exists] = await subscription.exists();
    if (!exists)
      throw new Error(`The dead-letter subscription ${subscription.name} does not exist`);
    return new DeadLetterQueue(
      new v1.SubscriberClient(
        (await pubsub.getClientConfig()) as ConstructorParameters<typeof v1.SubscriberClient>[0],
      ),
      subscription.name,
    );
  }

  /** The next messages not seen in this pass; empty once the subscription gives no more. */
  async pull(max = 100): Promise<ReceivedMessage[]> {
    const [response] = await this.client.pull(
      { subscription: this.subscription, maxMessages: max, returnImmediately: true },
      { timeout: 30_000 },
    );
    const received = (response.receivedMessages ?? []).map((entry) => ({
      ackId: entry.ackId ?? "",
      messageId: entry.message?.messageId ?? "",
      data: Buffer.from(entry.message?.data ?? ""),
      attributes: { ...(entry.message?.attributes ?? {}) },
    }));
    const ackIds = received.map((m) => m.ackId);
    if (ackIds.length > 0) await this.lease(ackIds, 600);
    ackIds.forEach((ackId) => this.leased.add(ackId));
    const fresh = received.filter((m) => !this.seen.has(m.messageId));
    fresh.forEach((m) => this.seen.add(m.messageId));
    return fresh;
  }

  async ack(ackId: string): Promise<void> {
    await this.client.acknowledge({ subscription: this.subscription, ackIds: [ackId] });
    this.leased.delete(ackId);
  }

  /** Hands every message still leased back to the subscription, unacked. */
  async close(): Promise<void> {
    if (this.leased.size > 0) await this.lease([...this.leased], 0);
    await this.client.close();
  }

  private async lease(ackIds: string[], seconds: number) {
    await this.client.modifyAckDeadline({
      subscription: this.subscription,
      ackIds,
      ackDeadlineSeconds: seconds,
    });
  }
}

/** A dead-lettered message as an item: republished as it was, acked once its records are stored. */
export function deadLetterItem(
  message: ReceivedMessage,
  queue: DeadLetterQueue,
  validators: Validators,
): ReplayItem {
  let candidate: unknown;
  try {
    candidate = JSON.parse(message.data.toString("utf8"));
  } catch {
    candidate = undefined;
  }
  const items = validators.pipelineEnvelope(candidate) ? candidate.records : [];
  const records = items.filter((item) => validators.pipelineRecord(item));
  // Pub/Sub adds these when it dead-letters a message; the worker does not need them.
  const attributes = Object.fromEntries(
    Object.entries(message.attributes).filter(([key]) => !key.startsWith("CloudPubSubDeadLetter")),
  );
  return {
    label: `dead letter ${message.messageId}`,
    records: records.map((record) => ({ ...record, sha256: sha256Hex(record.text) })),
    message: { data: message.data, attributes },
    problem:
      items.length === 0 || records.length < items.length
        ? "not a pipeline message the worker can read: inspect it, nothing is republished"
        : undefined,
    settle: () => queue.ack(message.ackId),
  };
}

export function summarise(results: readonly ItemResult[]): Record<Outcome, number> {
  const summary = { replayed: 0, already_stored: 0, still_failing: 0 };
  results.forEach((result) => result.outcomes.forEach((outcome) => summary[outcome]++));
  return summary;
}
