/**
 * One set of clients and dependencies per function instance. The configuration is
 * parsed when the module loads, so an invalid setting stops the instance at start-up;
 * clients are created on first use and reused by every invocation after it.
 */
import { Firestore } from "@google-cloud/firestore";
import type { PubSub } from "@google-cloud/pubsub";
import { AttemptTracker } from "./attempts";
import { openDemoAuthenticator, type Authenticator } from "./auth";
import { createApiKeyAuthenticator, createFirestoreApiKeys } from "./api-keys";
import { loadConfig, type Config } from "./config";
import { createFaultInjector } from "./faults";
import type { BodyGateOptions } from "./body-gate";
import { bodyLimitFor, preflight, type IngestDeps } from "./ingest-handler";
import { createLogger, errorFields, type Logger } from "./logger";
import type { ProcessDeps } from "./process-handler";
import { createTopicPublisher } from "./publisher";
import { createTenantRateLimiter } from "./rate-limit";
import { compileValidators } from "./schema";
import { createCoalescingQueue } from "./coalescer";
import { createFirestoreStore } from "./store";
import {
  createCachedTenantSettings,
  createFirestoreTenantSettings,
  type StoredSettingsRead,
  type TenantSettingsSource,
} from "./tenant-settings";

export const config: Config = loadConfig(process.env);

export const logger: Logger = createLogger(undefined, {
  logRecordSuccess: config.logRecordSuccess,
});
const validators = compileValidators(config);
if (config.authMode === "disabled") {
  logger.warn("AUTH_MODE=disabled: any caller may write to any tenant (open demo mode)");
}

let firestore: Firestore | undefined;
function sharedFirestore(): Firestore {
  firestore ??= new Firestore();
  return firestore;
}

function authenticator(): Authenticator {
  if (config.authMode === "disabled") return openDemoAuthenticator;
  return createApiKeyAuthenticator(createFirestoreApiKeys(sharedFirestore()).lookup, {
    cacheSeconds: config.apiKeyCacheSeconds,
    lookupTimeoutMs: config.authTimeoutMs,
    retryAfterSeconds: config.retryAfterSeconds,
  });
}

/** Tenants whose settings one instance keeps; beyond it the least recently read go. */
const MAX_CACHED_SETTINGS = 1_000;

/** One cache of tenant settings per instance, over `read`. */
function cachedTenantSettings(read: StoredSettingsRead): TenantSettingsSource {
  return createCachedTenantSettings(read, {
    ttlSeconds: config.redactionPolicyCacheSeconds,
    maxEntries: MAX_CACHED_SETTINGS,
    onInvalid: (tenantId, setting, violations) =>
      logger.warn(
        setting === "redaction"
          ? "stored redaction policy is invalid; redacting every kind"
          : `stored ${setting} is invalid; the default applies`,
        { tenant_id: tenantId, setting, violations: violations.join("; ") },
      ),
  });
}

/**
 * Ingest reads a tenant's rate limit override. A read that fails is not the caller's fault: the
 * default limit applies until the cache entry expires, and the request goes on.
 */
function ingestRateLimiter() {
  const firestoreSettings = createFirestoreTenantSettings(sharedFirestore(), config.authTimeoutMs);
  const settings = cachedTenantSettings((tenantId) =>
    firestoreSettings.read(tenantId).catch((error: unknown) => {
      logger.warn("tenant settings unreadable; the default rate limit applies", {
        tenant_id: tenantId,
        ...errorFields(error),
      });
      return undefined;
    }),
  );
  return createTenantRateLimiter({
    defaultPerSecond: config.tenantRateLimitPerSecond,
    burstSeconds: config.tenantRateLimitBurstSeconds,
    limitOf: async (tenantId) => (await settings.settingsFor(tenantId)).rateLimitPerSecond,
  });
}

/**
 * Only ingest publishes, so the client is loaded here rather than with this module: an instance
 * of the worker never loads it, a third of a second less in each of its cold starts.
 */
function ingestPubSub(): PubSub {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const client = require("@google-cloud/pubsub") as typeof import("@google-cloud/pubsub");
  return new client.PubSub();
}

let ingestDeps: IngestDeps | undefined;
export function ingestDependencies(): IngestDeps {
  ingestDeps ??= {
    config,
    validators,
    logger,
    rateLimiter: ingestRateLimiter(),
    authenticator: authenticator(),
    queue: createCoalescingQueue(createTopicPublisher(ingestPubSub(), config.topic, config), {
      windowMs: config.coalesceWindowMs,
      maxMessageBytes: config.maxMessageBytes,
    }),
  };
  return ingestDeps;
}

let processDeps: ProcessDeps | undefined;
export function processDependencies(): ProcessDeps {
  processDeps ??= {
    config,
    validators,
    logger,
    store: createFirestoreStore(sharedFirestore(), config.storeTimeoutMs, {
      throttling: config.firestoreThrottling,
    }),
    attempts: new AttemptTracker(),
    faults: createFaultInjector(config.faults, () => process.kill(process.pid, "SIGKILL") as never),
    // A read that fails rejects: the delivery fails and is redelivered, so no record is
    // redacted under a policy, or kept for a time, the worker could not read.
    tenantSettings: cachedTenantSettings(
      createFirestoreTenantSettings(sharedFirestore(), config.storeTimeoutMs).read,
    ),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
  return processDeps;
}

/** How the ingest instance's body gate checks and bounds a request before the function runs. */
export function ingestBodyGate(): BodyGateOptions {
  return {
    preflight: (request) => preflight(request, ingestDependencies()),
    limitFor: (request) => bodyLimitFor(request, config),
    maxBufferedBytes: config.maxBufferedBodyBytes,
    retryAfterSeconds: config.retryAfterSeconds,
    onRefused: (status, error) =>
      logger.info("request refused before the function ran", { status, error_name: error.name }),
  };
}
