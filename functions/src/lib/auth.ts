/**
 * The seam between the ingest edge and tenant authentication. The edge asks an
 * Authenticator who is calling before it reads the body.
 */
import type { IncomingHeaders } from "./http";

export interface Caller {
  /** The tenant the caller is proven to act for; null in the open demo mode (no auth). */
  readonly tenantId: string | null;
}

export interface Authenticator {
  /**
   * The checks that need no lookup (a credential is present and well-formed); throws
   * UnauthorizedError. Runs before the body is read.
   */
  checkPresented(headers: IncomingHeaders): void;
  /** Resolves the caller or throws UnauthorizedError (or ServiceUnavailableError). */
  authenticate(headers: IncomingHeaders): Promise<Caller>;
}

/** AUTH_MODE=disabled: the original brief's open demo, where the request names its tenant. */
export const openDemoAuthenticator: Authenticator = {
  checkPresented: () => undefined,
  authenticate: async () => ({ tenantId: null }),
};
