/**
 * Delivery attempt numbers. Pub/Sub reports them only on subscriptions with a
 * dead-letter policy; otherwise this instance counts the failed attempts it saw
 * itself, which is exact for a single worker and a lower bound across instances.
 */
const MAX_TRACKED_MESSAGES = 10_000;

export class AttemptTracker {
  private readonly failures = new Map<string, number>();

  attemptOf(messageId: string, reportedByTransport: number | undefined): number {
    if (reportedByTransport !== undefined && reportedByTransport > 0) return reportedByTransport;
    return (this.failures.get(messageId) ?? 0) + 1;
  }

  recordFailure(messageId: string): void {
    const failures = (this.failures.get(messageId) ?? 0) + 1;
    this.failures.delete(messageId);
    this.failures.set(messageId, failures);
    if (this.failures.size > MAX_TRACKED_MESSAGES) {
      // Maps iterate in insertion order: the first key is the least recently failed.
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
  }

  forget(messageId: string): void {
    this.failures.delete(messageId);
  }
}
