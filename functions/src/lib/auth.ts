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
  /** Resolves the caller or throws UnauthorizedError. */
  authenticate(headers: IncomingHeaders): Promise<Caller>;
}

/** AUTH_MODE=disabled: the original brief's open demo, where the request names its tenant. */
export const openDemoAuthenticator: Authenticator = {
  authenticate: async () => ({ tenantId: null }),
};
