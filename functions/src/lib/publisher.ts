/**
 * Publishing to Pub/Sub with a bound: `publish` resolves only once Pub/Sub has
 * acknowledged the message, and rejects with PublishUnconfirmedError when that
 * does not happen within the configured time, so ingest never hangs and never
 * answers 202 for a message Pub/Sub does not hold. A rejection does not mean the
 * message is absent: the client library may still deliver a publish it gave up on.
 */
import type { PubSub, Topic } from "@google-cloud/pubsub";
import { withDeadline } from "./deadline";
import { PublishUnconfirmedError } from "./errors";

export interface MessagePublisher {
  /** Resolves with the Pub/Sub message id once the publish is acknowledged. */
  publish(data: Buffer, attributes: Record<string, string>): Promise<string>;
}

export interface PublishBounds {
  readonly publishTimeoutMs: number;
  readonly retryAfterSeconds: number;
}

export function createTopicPublisher(pubsub: PubSub, topicName: string, bounds: PublishBounds) {
  const topic: Topic = pubsub.topic(topicName, {
    // The coalescing queue already packs records into messages; batching here again would
    // only add its wait to every request.
    batching: { maxMessages: 1 },
    // Let the client give up on its own retries at the same bound ingest answers by.
    gaxOpts: { timeout: bounds.publishTimeoutMs },
  });
  return boundedPublisher((data, attributes) => topic.publishMessage({ data, attributes }), bounds);
}

type RawPublish = (data: Buffer, attributes: Record<string, string>) => Promise<string>;

export function boundedPublisher(publish: RawPublish, bounds: PublishBounds): MessagePublisher {
  return {
    async publish(data, attributes) {
      try {
        return await withDeadline(
          publish(data, attributes),
          bounds.publishTimeoutMs,
          () =>
            new PublishUnconfirmedError(
              `The message queue did not confirm the record within ${bounds.publishTimeoutMs} ms`,
              bounds.retryAfterSeconds,
            ),
        );
      } catch (error) {
        if (error instanceof PublishUnconfirmedError) throw error;
        // A failed call may have reached Pub/Sub before it failed: still unknown, not refused.
        throw new PublishUnconfirmedError(
          "The message queue failed the publish of the record",
          bounds.retryAfterSeconds,
        );
      }
    },
  };
}
