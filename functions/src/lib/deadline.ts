/**
 * Bounds a call whose client would otherwise keep retrying for a minute or more (Pub/Sub
 * and Firestore both do while their backend is unreachable).
 */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

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
