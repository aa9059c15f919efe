/**
 * Deadlines for calls whose client would otherwise keep retrying for a minute or more (Pub/Sub
 * and Firestore both do while their backend is unreachable).
 */

/** One deadline shared by several calls: each races `expired`, which rejects once, at `ms`. */
export interface Deadline {
  readonly expired: Promise<never>;
  clear(): void;
}

export function deadlineAfter(ms: number, onTimeout: () => Error): Deadline {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  // Callers race it; a deadline nobody raced when it passed is not an unhandled rejection.
  expired.catch(() => undefined);
  return { expired, clear: () => clearTimeout(timer) };
}

/** Bounds one call: it rejects with `onTimeout()` if `work` has not settled within `ms`. */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  const deadline = deadlineAfter(ms, onTimeout);
  try {
    return await Promise.race([work, deadline.expired]);
  } finally {
    deadline.clear();
  }
}
