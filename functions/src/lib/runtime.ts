/**
 * One set of clients and dependencies per function instance. The configuration is
 * parsed when the module loads, so an invalid setting stops the instance at start-up;
 * clients are created on first use and reused by every invocation after it.
 */
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { AttemptTracker } from "./attempts";
import { openDemoAuthenticator, type Authenticator } from "./auth";
import { createApiKeyAuthenticator, createFirestoreApiKeys } from "./api-keys";
import { loadConfig, type Config } from "./config";
import { createFaultInjector } from "./faults";
import type { BodyGateOptions } from "./body-gate";
import { bodyLimitFor, preflight, type IngestDeps } from "./ingest-handler";
import { createLogger, type Logger } from "./logger";
import type { ProcessDeps } from "./process-handler";
import { createTopicPublisher } from "./publisher";
import {
  createCachedRedactionPolicies,
  createFirestoreRedactionPolicies,
} from "./redaction-policies";
import { compileValidators } from "./schema";
import { createCoalescingQueue } from "./coalescer";
import { createFirestoreStore } from "./store";

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

let ingestDeps: IngestDeps | undefined;
export function ingestDependencies(): IngestDeps {
  ingestDeps ??= {
    config,
    validators,
    logger,
    authenticator: authenticator(),
    queue: createCoalescingQueue(createTopicPublisher(new PubSub(), config.topic, config), {
      windowMs: config.coalesceWindowMs,
      maxMessageBytes: config.maxMessageBytes,
    }),
  };
  return ingestDeps;
}

/** Tenants whose policy one worker instance keeps; beyond it the least recently read go. */
const MAX_CACHED_POLICIES = 1_000;

let processDeps: ProcessDeps | undefined;
export function processDependencies(): ProcessDeps {
  processDeps ??= {
    config,
    validators,
    logger,
    store: createFirestoreStore(sharedFirestore(), config.storeTimeoutMs),
    attempts: new AttemptTracker(),
    faults: createFaultInjector(config.faults, () => process.kill(process.pid, "SIGKILL") as never),
    redactionPolicies: createCachedRedactionPolicies(
      createFirestoreRedactionPolicies(sharedFirestore(), config.storeTimeoutMs).read,
      {
        ttlSeconds: config.redactionPolicyCacheSeconds,
        maxEntries: MAX_CACHED_POLICIES,
        onInvalid: (tenantId, violations) =>
          logger.warn("stored redaction policy is invalid; redacting every kind", {
            tenant_id: tenantId,
            violations: violations.join("; "),
          }),
      },
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
