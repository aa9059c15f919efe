#!/usr/bin/env bash
# Takes a Google Cloud project, empty or already deployed, to a running, locked-down deployment of
# the Robust Data Processor: APIs, Firestore (database, rules, index settings), Pub/Sub topics and
# dead-letter queue, one service account per function, IAM, both functions and the dead-letter
# policy of the trigger subscription. Safe to re-run: every step checks before it creates, grants
# are idempotent, and a function whose build and settings are unchanged is not redeployed.
# Settings: deploy/config.env. Documentation: README.md, section Release.
set -euo pipefail

# shellcheck source=scripts/lib/gcloud-plan.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/gcloud-plan.sh"

usage() {
  cat <<'EOF'
Usage: scripts/deploy.sh --project ID [--region R] [--config FILE] [--dry-run] [--allow-open-demo]
                        [--allow-location-mismatch] [--replace-trigger]
       npm run deploy -- --project ID [...]

Deploys the ingest (HTTP) and process (Pub/Sub) functions to Cloud Functions gen2, with their
topics, dead-letter queue, service accounts, IAM bindings, Firestore database, rules and index
settings. Re-running it changes nothing that is already in place.

  --project ID       Google Cloud project to deploy to (required)
  --region R         Region of the functions and their trigger (default: REGION of the config)
  --config FILE      Settings file (default: deploy/config.env)
  --dry-run          Print every command in order, the checks included, and run none of them
  --allow-open-demo  Permit AUTH_MODE=disabled (anyone may write to any tenant); demos only
  --allow-location-mismatch
                     Permit a Firestore location away from the functions' region (every write
                     then crosses that distance, and the data lives there for good)
  --replace-trigger  Permit replacing process's trigger when its topic or identity changed: the
                     trigger's subscription is deleted with every message still waiting in it
  -h, --help         Show this help

Refuses to run while any FAULT_* variable is set, in the environment or in the config file.
EOF
}

ALLOW_OPEN_DEMO=0
ALLOW_LOCATION_MISMATCH=0
REPLACE_TRIGGER=0
while (($#)); do
  case $1 in
    --allow-open-demo) ALLOW_OPEN_DEMO=1 ;;
    --allow-location-mismatch) ALLOW_LOCATION_MISMATCH=1 ;;
    --replace-trigger) REPLACE_TRIGGER=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      plan_take_common_flag "$@" || plan_usage_error "unknown argument: $1"
      shift "$PLAN_SHIFT"
      continue
      ;;
  esac
  shift
done

plan_init

PROJECT=$PLAN_PROJECT
REGION=$PLAN_REGION
ROOT=$PLAN_REPO_ROOT
FUNCTIONS_DIR=$ROOT/functions
FIREBASE_CONFIG=$ROOT/firebase.json

# ---------------------------------------------------------------------------------------------
# Safety checks (they run in a dry run too: a dry run shows what a real run would do).

refuse_fault_injection() {
  local name found=()
  while IFS= read -r name; do
    [[ $name == FAULT_* ]] && found+=("$name (set in the environment)")
  done < <(compgen -e)
  for name in "${PLAN_FAULT_KEYS_IN_CONFIG[@]}"; do
    found+=("$name (set in $PLAN_CONFIG)")
  done
  if ((${#found[@]})); then
    plan_refuse "fault injection is for local runs only, and these FAULT_* variables are set:$(
      printf '\n  - %s' "${found[@]}"
    )"$'\n'"Unset them (and remove them from the config file) before deploying."
  fi
}

refuse_open_auth() {
  if [[ $(cfg AUTH_MODE) == disabled ]] && ((!ALLOW_OPEN_DEMO)); then
    plan_refuse "AUTH_MODE=disabled in $PLAN_CONFIG would let anyone on the internet write to" \
      "any tenant. Pass --allow-open-demo if this is a throw-away demo project."
  fi
}

# The config file is the only source of the runtime variables: a different value exported in the
# deploy shell (left over from a local run, say) would be ignored, so say so instead.
refuse_environment_drift() {
  local name value drift=()
  for name in "${PLAN_RUNTIME_VARS[@]}"; do
    [[ -n ${!name+set} ]] || continue
    value=${!name}
    [[ $value == "$(cfg "$name")" ]] || drift+=("$name=$value (config: $(cfg "$name"))")
  done
  if ((${#drift[@]})); then
    plan_refuse "these runtime variables are exported in your shell with values that differ from" \
      "$PLAN_CONFIG, which is what gets deployed:$(printf '\n  - %s' "${drift[@]}")"$'\n'"Unset" \
      "them, or change the config file."
  fi
}

require_int() { # KEY MIN MAX
  local value
  value=$(cfg "$1")
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < $2 || value > $3)); then
    plan_config_error "$1 must be a whole number from $2 to $3, got '$value'"
  fi
}

require_match() { # KEY REGEX DESCRIPTION
  [[ $(cfg "$1") =~ $2 ]] || plan_config_error "$1 must be $3, got '$(cfg "$1")'"
}

seconds_of() { # "10s" -> 10
  local value
  value=$(cfg "$1")
  printf '%s' "${value%s}"
}

duration_seconds() { # "31d" -> 2678400
  local value=$1
  case $value in
    *d) printf '%s' $((${value%d} * 86400)) ;;
    *h) printf '%s' $((${value%h} * 3600)) ;;
    *m) printf '%s' $((${value%m} * 60)) ;;
    *) printf '%s' "${value%s}" ;;
  esac
}

validate_config() {
  local fn name value
  require_match RUNTIME '^nodejs[0-9]+$' "a Node.js runtime such as nodejs22"
  require_match PROCESS_INGRESS '^(all|internal-only|internal-and-gclb)$' \
    "all, internal-only or internal-and-gclb"
  for name in INGEST_TOPIC DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION; do
    require_match "$name" '^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$' "a Pub/Sub resource name"
  done
  require_match DEAD_LETTER_RETENTION '^[0-9]+[smhd]$' "a duration such as 31d"
  (($(duration_seconds "$(cfg DEAD_LETTER_RETENTION)") <= 31 * 86400)) ||
    plan_config_error "DEAD_LETTER_RETENTION must not exceed 31d (the Pub/Sub maximum)"
  for name in INGEST_SERVICE_ACCOUNT PROCESS_SERVICE_ACCOUNT TRIGGER_SERVICE_ACCOUNT \
    BUILD_SERVICE_ACCOUNT; do
    require_match "$name" '^[a-z][a-z0-9-]{4,28}[a-z0-9]$' "a service account id (6-30 chars)"
  done
  require_match FIRESTORE_LOCATION '^[a-z0-9-]+$' "auto, or a Firestore location such as eur3"
  for fn in INGEST PROCESS; do
    require_match "${fn}_MEMORY" '^[0-9]+(k|M|G|Ki|Mi|Gi)[bB]?$' "a size such as 256Mi"
    require_match "${fn}_CPU" '^([0-9]+(\.[0-9]+)?|\.[0-9]+|[0-9]+m)$' "a CPU count such as 1"
    require_int "${fn}_CONCURRENCY" 1 1000
    require_int "${fn}_MIN_INSTANCES" 0 1000
    require_int "${fn}_MAX_INSTANCES" 1 1000
    (($(cfg "${fn}_MIN_INSTANCES") <= $(cfg "${fn}_MAX_INSTANCES"))) ||
      plan_config_error "${fn}_MIN_INSTANCES must not exceed ${fn}_MAX_INSTANCES"
    value=$(cfg "${fn}_CPU")
    [[ $value == *m ]] && value=$(awk -v m="${value%m}" 'BEGIN { print m / 1000 }')
    if (($(cfg "${fn}_CONCURRENCY") > 1)) && ! awk -v c="$value" 'BEGIN { exit !(c >= 1) }'; then
      plan_config_error "${fn}_CONCURRENCY above 1 needs ${fn}_CPU of at least 1 (Cloud Functions rule)"
    fi
  done
  require_int INGEST_TIMEOUT_SECONDS 1 3600
  require_int PROCESS_TIMEOUT_SECONDS 1 540
  require_int ACK_DEADLINE_SECONDS 10 600
  require_int MAX_DELIVERY_ATTEMPTS 5 100
  require_match MIN_RETRY_DELAY '^[0-9]+s$' "seconds such as 10s"
  require_match MAX_RETRY_DELAY '^[0-9]+s$' "seconds such as 600s"
  (($(seconds_of MIN_RETRY_DELAY) <= $(seconds_of MAX_RETRY_DELAY) && $(seconds_of MAX_RETRY_DELAY) <= 600)) ||
    plan_config_error "need MIN_RETRY_DELAY <= MAX_RETRY_DELAY <= 600s"
  (($(cfg PROCESS_TIMEOUT_SECONDS) <= $(cfg ACK_DEADLINE_SECONDS))) ||
    plan_config_error "PROCESS_TIMEOUT_SECONDS ($(cfg PROCESS_TIMEOUT_SECONDS)) must not exceed" \
      "ACK_DEADLINE_SECONDS ($(cfg ACK_DEADLINE_SECONDS)), or Pub/Sub redelivers events still running"
  require_match NODE_OPTIONS '^--max-old-space-size=[0-9]+$' "--max-old-space-size=<MiB>"
  require_match AUTH_MODE '^(api_key|disabled)$' "api_key or disabled"
  for name in "${PLAN_RUNTIME_VARS[@]}"; do
    [[ $(cfg "$name") != *[,$'\n']* ]] || plan_config_error "$name must not contain a comma"
  done
}

# The Firestore location nearest the functions: the multi-region of their continent where there
# is one (eur3: Belgium and Finland; nam5: the central US), else their own region, which is also
# a Firestore location for most regions.
nearest_firestore_location() {
  case $1 in
    europe-*) printf 'eur3' ;;
    us-*) printf 'nam5' ;;
    *) printf '%s' "$1" ;;
  esac
}

# Every write of the worker goes to Firestore, and a database's location can never change, so a
# database elsewhere than the functions' region or its continent's multi-region is refused
# unless asked for.
refuse_location_mismatch() { # LOCATION WHAT [ANOTHER WAY OUT]
  [[ $1 == "$REGION" || $1 == "$(nearest_firestore_location "$REGION")" ]] && return 0
  ((ALLOW_LOCATION_MISMATCH)) && {
    plan_warn "$2 is $1, away from the functions' region $REGION (--allow-location-mismatch)"
    return 0
  }
  plan_refuse "$2 is $1, but the functions run in $REGION: every write would travel between" \
    "the two, and the data would live in $1 for good (a database's location cannot change)." \
    "Deploy to a region of $1 with --region${3:+, $3}, or pass --allow-location-mismatch."
}

refuse_fault_injection
validate_config
refuse_open_auth
refuse_environment_drift
if [[ $(cfg FIRESTORE_LOCATION) == auto ]]; then
  FIRESTORE_LOCATION=$(nearest_firestore_location "$REGION")
else
  FIRESTORE_LOCATION=$(cfg FIRESTORE_LOCATION)
  refuse_location_mismatch "$FIRESTORE_LOCATION" "FIRESTORE_LOCATION in $PLAN_CONFIG" \
    "set FIRESTORE_LOCATION=auto (gives $(nearest_firestore_location "$REGION") for $REGION)"
fi

# ---------------------------------------------------------------------------------------------
# Values used by the steps.

runtime_env_pairs() {
  local name
  for name in "${PLAN_RUNTIME_VARS[@]}"; do
    printf '%s=%s\n' "$name" "$(cfg "$name")"
  done
  printf 'NODE_OPTIONS=%s\n' "$(cfg NODE_OPTIONS)"
}
ENV_VARS=$(runtime_env_pairs | paste -sd, -)

APIS=(
  cloudresourcemanager.googleapis.com iam.googleapis.com serviceusage.googleapis.com
  cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com storage.googleapis.com logging.googleapis.com
  eventarc.googleapis.com pubsub.googleapis.com firestore.googleapis.com
  firebaserules.googleapis.com
)

# Checks both entry points exist and the config passes the functions' own validation
# (functions/src/lib/config.ts), with nothing but the deployed variables in the environment.
EXPORTS_CHECK='const m = require(process.argv[1]); for (const name of ["ingest", "process"]) if (typeof m[name] !== "function") throw new Error("functions/lib/index.js does not export " + name);'

# ---------------------------------------------------------------------------------------------
# Steps.

preflight() {
  ((PLAN_DRY_RUN)) && return 0
  plan_require_tools gcloud npm node awk paste
  [[ -x $ROOT/node_modules/.bin/firebase && -x $ROOT/node_modules/.bin/tsc ]] ||
    plan_die "the repo's dev tools are missing: run 'npm ci' at the repository root first"
  [[ -f $FUNCTIONS_DIR/package-lock.json ]] ||
    plan_die "functions/package-lock.json is missing; Cloud Build installs from it with npm ci"
  node -e '
    const firestore = require(process.argv[1]).firestore || {};
    if (firestore.rules !== "firestore.rules" || firestore.indexes !== "firestore.indexes.json") {
      throw new Error("firebase.json must name firestore.rules and firestore.indexes.json");
    }' "$FIREBASE_CONFIG" || plan_die "$FIREBASE_CONFIG does not deploy the Firestore rules and indexes"
}

step_build() {
  plan_note "Build the functions from source (functions/src -> functions/lib)"
  plan_run rm -rf "$FUNCTIONS_DIR/lib"
  plan_run npm --prefix "$ROOT" run build
  local -a env_pairs
  mapfile -t env_pairs < <(runtime_env_pairs)
  plan_run env -i "${env_pairs[@]}" "$(command -v node || echo node)" -e "$EXPORTS_CHECK" \
    "$FUNCTIONS_DIR/lib/index.js"
}

step_project() {
  plan_note "Project and APIs"
  plan_lookup PROJECT_NUMBER '<PROJECT_NUMBER>' "the project number names the Pub/Sub service agent" \
    gcloud projects describe "$PROJECT" '--format=value(projectNumber)'
  [[ -n $PROJECT_NUMBER ]] || plan_die "project $PROJECT not found, or you cannot see it"
  PUBSUB_AGENT="service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
  # Without billing, enabling Cloud Functions, Cloud Build or Cloud Run fails half-way through.
  local billing
  plan_lookup billing True "enable the APIs only on a project with billing enabled" \
    gcloud billing projects describe "$PROJECT" '--format=value(billingEnabled)'
  [[ $billing == True ]] || plan_die "billing is not enabled on $PROJECT (Cloud Functions gen2" \
    "needs it): link a billing account with 'gcloud billing projects link $PROJECT" \
    "--billing-account=ACCOUNT_ID' (list yours with 'gcloud billing accounts list') and re-run"
  plan_run_retry gcloud services enable "${APIS[@]}" "--project=$PROJECT" --quiet
  # Makes sure the service agents exist before they are granted roles below.
  plan_run_retry gcloud beta services identity create --service=pubsub.googleapis.com \
    "--project=$PROJECT" --format=none --quiet
  plan_run_retry gcloud beta services identity create --service=eventarc.googleapis.com \
    "--project=$PROJECT" --format=none --quiet
  wait_for_service_agents
}

# Google grants each service agent its role when its API is enabled, and a first deploy fails
# until those grants exist (the trigger's, with "Permission denied while using the Eventarc
# Service Agent"). Waits until the project's policy shows all of them.
wait_for_service_agents() {
  local agents="serviceAccount:service-$PROJECT_NUMBER" current role member missing attempt=1
  local -a needed=(
    "roles/cloudfunctions.serviceAgent"$'\t'"$agents@gcf-admin-robot.iam.gserviceaccount.com"
    "roles/run.serviceAgent"$'\t'"$agents@serverless-robot-prod.iam.gserviceaccount.com"
    "roles/eventarc.serviceAgent"$'\t'"$agents@gcp-sa-eventarc.iam.gserviceaccount.com"
    "roles/pubsub.serviceAgent"$'\t'"$agents@gcp-sa-pubsub.iam.gserviceaccount.com"
  )
  while :; do
    plan_lookup current "" "wait until the service agents hold their roles" \
      gcloud projects get-iam-policy "$PROJECT" '--flatten=bindings[].members' \
      '--format=value(bindings.role,bindings.members)'
    ((PLAN_DRY_RUN)) && return 0
    missing=()
    for role in "${needed[@]}"; do
      grep -qxF "$role" <<<"$current" || missing+=("$role")
    done
    ((${#missing[@]})) || return 0
    plan_wait_to_retry "$attempt" "${#missing[@]} service agent role(s) not granted yet" || break
    attempt=$((attempt + 1))
  done
  for role in "${missing[@]}"; do
    member=${role#*$'\t'}
    plan_warn "missing: $member has no ${role%%$'\t'*}; grant it with: gcloud projects" \
      "add-iam-policy-binding $PROJECT --member=$member --role=${role%%$'\t'*}"
  done
  plan_die "the service agents above still lack their roles, which Google grants when an API is" \
    "enabled; grant them (commands above) or wait, and re-run"
}

step_firestore() {
  plan_note "Firestore: the (default) database, security rules and single-field index settings"
  local database type location
  plan_lookup database "" "create the database only if there is none" \
    gcloud firestore databases describe '--database=(default)' "--project=$PROJECT" \
    '--format=value(type,locationId)'
  type=${database%%$'\t'*}
  location=${database#*$'\t'}
  if [[ -z $type ]]; then
    plan_run_retry gcloud firestore databases create '--database=(default)' \
      "--location=$FIRESTORE_LOCATION" --type=firestore-native "--project=$PROJECT" --quiet
  elif [[ $type != FIRESTORE_NATIVE ]]; then
    plan_die "the (default) database of $PROJECT is $type; the functions need Firestore Native mode"
  else
    refuse_location_mismatch "$location" "the (default) database of $PROJECT"
    plan_note "  (default) database exists in $location, keeping it"
  fi
  check_firebase_credentials
  # The same firebase.json, rules and index files as `firebase deploy --only functions,firestore`.
  # GOOGLE_CLOUD_QUOTA_PROJECT: the CLI bills its API calls to this project, whatever quota
  # project the credentials name.
  plan_run_retry env "GOOGLE_CLOUD_QUOTA_PROJECT=$PROJECT" "$ROOT/node_modules/.bin/firebase" \
    deploy --only=firestore "--project=$PROJECT" "--config=$FIREBASE_CONFIG" --non-interactive
}

# The Firebase CLI signs in with Application Default Credentials, not with gcloud's own login:
# stop before it fails half-way with a message about another project.
check_firebase_credentials() {
  local file quota
  local -a check=(gcloud auth application-default print-access-token)
  printf '+ %s  # check: %s\n' "$(plan_render "${check[@]}")" \
    "Application Default Credentials for the Firebase CLI"
  ((PLAN_DRY_RUN)) && return 0
  "${check[@]}" >/dev/null 2>&1 || plan_die "no usable Application Default Credentials, which" \
    "the Firebase CLI deploys the Firestore rules with: run 'gcloud auth application-default" \
    "login' and re-run"
  file=${GOOGLE_APPLICATION_CREDENTIALS:-${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json}
  quota=$(node -e 'try { process.stdout.write(require(process.argv[1]).quota_project_id || "") } catch {}' \
    "$file")
  if [[ -n $quota && $quota != "$PROJECT" ]]; then
    plan_note "  the credentials' quota project is $quota; the Firebase CLI is told to use $PROJECT"
  fi
}

step_pubsub() {
  plan_note "Pub/Sub: ingest topic, dead-letter topic and the subscription that keeps dead letters"
  local topic hold
  for topic in "${PLAN_TOPICS[@]}"; do
    if plan_exists "create the topic only if absent" \
      gcloud pubsub topics describe "$topic" "--project=$PROJECT" '--format=value(name)'; then
      plan_note "  topic $topic exists"
    else
      plan_run gcloud pubsub topics create "$topic" "--project=$PROJECT" --quiet
    fi
  done
  hold=$(cfg DEAD_LETTER_SUBSCRIPTION)
  local retention
  plan_lookup retention "" "create the dead-letter subscription only if absent" \
    gcloud pubsub subscriptions describe "$hold" "--project=$PROJECT" \
    '--format=value(messageRetentionDuration)'
  if [[ $retention == "$(duration_seconds "$(cfg DEAD_LETTER_RETENTION)")s" ]]; then
    plan_note "  subscription $hold exists"
  elif [[ -n $retention ]]; then
    plan_run_retry gcloud pubsub subscriptions update "$hold" \
      "--message-retention-duration=$(cfg DEAD_LETTER_RETENTION)" "--project=$PROJECT" --quiet
  else
    plan_run gcloud pubsub subscriptions create "$hold" "--topic=$(cfg DEAD_LETTER_TOPIC)" \
      "--message-retention-duration=$(cfg DEAD_LETTER_RETENTION)" --expiration-period=never \
      --ack-deadline=60 "--project=$PROJECT" --quiet
  fi
}

step_service_accounts() {
  plan_note "Service accounts: one per function, one for the trigger, one for the build"
  local entry email
  for entry in "${PLAN_SERVICE_ACCOUNTS[@]}"; do
    email=${entry%%|*}
    if plan_exists "create the service account only if absent" \
      gcloud iam service-accounts describe "$email" "--project=$PROJECT" '--format=value(email)'; then
      plan_note "  $email exists"
    else
      plan_run gcloud iam service-accounts create "${email%%@*}" "--display-name=${entry#*|}" \
        "--project=$PROJECT" --quiet
    fi
  done
}

step_iam() {
  plan_note "IAM: least privilege, granted on the narrowest resource available"
  local current role member
  plan_current_project_bindings current
  while IFS=$'\t' read -r role member; do
    if grep -qxF "$role"$'\t'"$member" <<<"$current"; then
      plan_note "  $member already has $role"
    else
      plan_run_retry gcloud projects add-iam-policy-binding "$PROJECT" "--member=$member" \
        "--role=$role" --condition=None --format=none --quiet
    fi
  done < <(plan_project_bindings)
  # ingest may publish to its topic and nothing else.
  plan_run_retry gcloud pubsub topics add-iam-policy-binding "$(cfg INGEST_TOPIC)" \
    "--member=serviceAccount:$SA_INGEST" --role=roles/pubsub.publisher "--project=$PROJECT" \
    --format=none --quiet
  # Pub/Sub moves undeliverable messages to the dead-letter topic as its service agent, and signs
  # the trigger's push requests with the trigger identity's tokens.
  plan_run_retry gcloud pubsub topics add-iam-policy-binding "$(cfg DEAD_LETTER_TOPIC)" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.publisher "--project=$PROJECT" \
    --format=none --quiet
  plan_run_retry gcloud iam service-accounts add-iam-policy-binding "$SA_TRIGGER" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/iam.serviceAccountTokenCreator \
    "--project=$PROJECT" --format=none --quiet
}

# A digest of what a deploy puts in place: the files gcloud uploads (.gcloudignore keeps them to
# lib/ and the manifests), by their path inside functions/, and the settings (the flags, less
# --source: deploying from another checkout of the same code changes nothing).
deploy_fingerprint() {
  ((PLAN_DRY_RUN)) && {
    printf '<SOURCE_HASH>'
    return 0
  }
  local -a hasher=(sha256sum)
  command -v sha256sum >/dev/null 2>&1 || hasher=(shasum -a 256)
  {
    (
      cd "$FUNCTIONS_DIR"
      find lib -type f -print0 | LC_ALL=C sort -z | xargs -0 "${hasher[@]}"
      "${hasher[@]}" package.json package-lock.json .gcloudignore
    )
    printf '%s\n' "$@" | grep -v '^--source='
  } | "${hasher[@]}" | cut -c1-40
}

# What is live of function NAME: FN_STATE (ACTIVE, FAILED, ...; "" when absent), FN_HASH (its
# rdp_deploy_hash label) and FN_TRIGGER ("topic<TAB>identity<TAB>retry policy"; empty for HTTP).
describe_function() {
  local current
  local -a field
  plan_lookup current "" "what is live: state, deploy label and trigger" \
    gcloud functions describe "$1" --v2 "--region=$REGION" "--project=$PROJECT" \
    '--format=value(state,labels.rdp_deploy_hash,eventTrigger.pubsubTopic,eventTrigger.serviceAccountEmail,eventTrigger.retryPolicy)'
  mapfile -t field < <(printf '%s\n' "$current" | tr '\t' '\n')
  FN_STATE=${field[0]-}
  FN_HASH=${field[1]-}
  FN_TRIGGER=$(printf '%s\t%s\t%s' "${field[2]-}" "${field[3]-}" "${field[4]-}")
}

# How ingest is open to the internet: "allUsers" (invoker role), "no-invoker-iam-check" (the
# Cloud Run service skips the IAM check) or "" (closed). A function's service has its name.
ingest_access() {
  local bindings disabled
  INGEST_ACCESS=""
  plan_lookup bindings "" "is ingest open to allUsers?" \
    gcloud run services get-iam-policy "$PLAN_INGEST_FUNCTION" "--region=$REGION" \
    "--project=$PROJECT" '--flatten=bindings[].members' \
    '--format=value(bindings.role,bindings.members)'
  if grep -qxF $'roles/run.invoker\tallUsers' <<<"$bindings"; then
    INGEST_ACCESS=allUsers
    return 0
  fi
  plan_lookup disabled "" "or does its service skip the invoker IAM check?" \
    gcloud run services describe "$PLAN_INGEST_FUNCTION" "--region=$REGION" "--project=$PROJECT" \
    "--format=value(metadata.annotations.'run.googleapis.com/invoker-iam-disabled')"
  [[ ${disabled,,} == true ]] && INGEST_ACCESS=no-invoker-iam-check
  return 0
}

# ingest is public at the HTTP layer; its API keys authenticate every request. An organization
# that enforces domain restricted sharing (constraints/iam.allowedPolicyMemberDomains) refuses
# allUsers in any IAM policy; Google's documented way to serve the public under that constraint
# is to turn off the Cloud Run invoker IAM check of the service instead.
make_ingest_public() {
  if plan_try gcloud functions add-invoker-policy-binding "$PLAN_INGEST_FUNCTION" \
    "--region=$REGION" "--project=$PROJECT" --member=allUsers --format=none --quiet; then
    ((PLAN_DRY_RUN)) && plan_note "  (if an organization policy refuses allUsers: gcloud run" \
      "services update $PLAN_INGEST_FUNCTION --no-invoker-iam-check, see README, Release)"
    INGEST_ACCESS=allUsers
    return 0
  fi
  if ! grep -qE 'do not belong to a permitted customer|domain restriction organi[sz]ation policy|iam\.allowedPolicyMemberDomains' \
    <<<"$PLAN_LAST_ERROR"; then
    plan_die "could not make ingest public: $(plan_error_status "$PLAN_LAST_ERROR") (message" \
      "above). ingest is deployed but answers 403 to everyone; fix the cause and re-run"
  fi
  plan_warn "an organization policy (domain restricted sharing) refuses allUsers as invoker of" \
    "ingest. Falling back to Google's documented alternative: turning off the Cloud Run invoker" \
    "IAM check of the ingest service. ingest stays public; API keys authenticate every request."
  plan_try gcloud run services update "$PLAN_INGEST_FUNCTION" "--region=$REGION" \
    "--project=$PROJECT" --no-invoker-iam-check --quiet ||
    plan_die "the fallback failed too ($(plan_error_status "$PLAN_LAST_ERROR"), message above):" \
      "ingest is deployed but answers 403 to everyone. Ask an organization admin to allow" \
      "allUsers on this project (an exception to iam.allowedPolicyMemberDomains) or to let it" \
      "turn off the invoker IAM check (run.managed.requireInvokerIam), then re-run"
  INGEST_ACCESS=no-invoker-iam-check
}

# gcloud can write a function's labels only within a deploy (each of which uploads and rebuilds),
# so the rdp_deploy_hash label says which build and settings are live, written by the deploy.
# It is never trusted alone: a function is skipped only if it is also ACTIVE and the outcome of
# its later steps is observable (OUTCOME_OK=1: ingest is public; process's trigger is as
# configured). When that outcome is missing, the last run stopped part-way, and the function is
# deployed again.
function_is_done() { # NAME FINGERPRINT OUTCOME_OK
  [[ $FN_STATE == ACTIVE && $FN_HASH == "$2" ]] || return 1
  if (($3)); then
    plan_note "  $1 is unchanged since its last deploy, which completed; skipping"
    return 0
  fi
  plan_note "  $1 carries this build's label, but its last deploy did not complete (see below);" \
    "deploying it again"
  return 1
}

step_functions() {
  plan_note "Functions (Cloud Functions gen2)"
  local fingerprint wanted_trigger public
  local -a common=(
    --gen2 "--region=$REGION" "--project=$PROJECT" "--runtime=$(cfg RUNTIME)"
    "--source=$FUNCTIONS_DIR" "--build-service-account=projects/$PROJECT/serviceAccounts/$SA_BUILD"
    "--set-env-vars=$ENV_VARS" --quiet
  )
  # No --[no-]allow-unauthenticated: on an existing function gcloud would rewrite its invoker
  # binding on every deploy. make_ingest_public opens it, once.
  local -a ingest=(
    "${common[@]}" --entry-point=ingest --trigger-http --ingress-settings=all
    "--run-service-account=$SA_INGEST" "--memory=$(cfg INGEST_MEMORY)" "--cpu=$(cfg INGEST_CPU)"
    "--concurrency=$(cfg INGEST_CONCURRENCY)" "--timeout=$(cfg INGEST_TIMEOUT_SECONDS)s"
    "--min-instances=$(cfg INGEST_MIN_INSTANCES)" "--max-instances=$(cfg INGEST_MAX_INSTANCES)"
  )
  # Private: only the trigger identity may invoke it, and only from inside Google's network.
  local -a process=(
    "${common[@]}" --entry-point=process --no-allow-unauthenticated
    "--ingress-settings=$(cfg PROCESS_INGRESS)" "--run-service-account=$SA_PROCESS"
    "--memory=$(cfg PROCESS_MEMORY)" "--cpu=$(cfg PROCESS_CPU)"
    "--concurrency=$(cfg PROCESS_CONCURRENCY)" "--timeout=$(cfg PROCESS_TIMEOUT_SECONDS)s"
    "--min-instances=$(cfg PROCESS_MIN_INSTANCES)" "--max-instances=$(cfg PROCESS_MAX_INSTANCES)"
  )
  local -a trigger=(
    "--trigger-topic=$(cfg INGEST_TOPIC)" --retry "--trigger-service-account=$SA_TRIGGER"
  )

  fingerprint=$(deploy_fingerprint "${ingest[@]}")
  describe_function "$PLAN_INGEST_FUNCTION"
  ingest_access
  public=0
  [[ -z $INGEST_ACCESS ]] || public=1
  if ! function_is_done "$PLAN_INGEST_FUNCTION" "$fingerprint" "$public"; then
    plan_run_retry gcloud functions deploy "$PLAN_INGEST_FUNCTION" "${ingest[@]}" \
      "--update-labels=rdp_deploy_hash=$fingerprint"
    # Checked again: a deploy updates the Cloud Run service, which may reset what was set on it.
    [[ -z $INGEST_ACCESS ]] || ingest_access
    [[ -n $INGEST_ACCESS ]] || make_ingest_public
  fi
  plan_note "  ingest is public through: $INGEST_ACCESS"

  # Passing trigger flags on an update puts the whole event trigger in gcloud's update mask; a
  # replaced trigger takes its Pub/Sub subscription with it: the backlog, pending retries and the
  # dead-letter policy set below. So an update that keeps the trigger passes none of them, and
  # gcloud keeps the live one. (Owning the push subscription instead would turn process into an
  # HTTP function that parses Pub/Sub push requests itself, and part ways with `firebase deploy`.)
  fingerprint=$(deploy_fingerprint "${process[@]}" "${trigger[@]}")
  describe_function "$PLAN_PROCESS_FUNCTION"
  wanted_trigger=$(printf '%s\t%s\t%s' "projects/$PROJECT/topics/$(cfg INGEST_TOPIC)" \
    "$SA_TRIGGER" RETRY_POLICY_RETRY)
  if [[ -z $FN_STATE ]]; then
    plan_run_retry gcloud functions deploy "$PLAN_PROCESS_FUNCTION" "${process[@]}" "${trigger[@]}" \
      "--update-labels=rdp_deploy_hash=$fingerprint"
  elif [[ $FN_TRIGGER == "$wanted_trigger" ]]; then
    if ! function_is_done "$PLAN_PROCESS_FUNCTION" "$fingerprint" 1; then
      plan_note "  its trigger is as configured: deploying without trigger flags, so it stays"
      plan_run_retry gcloud functions deploy "$PLAN_PROCESS_FUNCTION" "${process[@]}" \
        "--update-labels=rdp_deploy_hash=$fingerprint"
    fi
  else
    ((REPLACE_TRIGGER)) || plan_refuse "process's trigger is '${FN_TRIGGER//$'\t'/ }', the config" \
      "wants '${wanted_trigger//$'\t'/ }'. Replacing it deletes its Pub/Sub subscription with" \
      "every message still waiting in it. Stop ingest traffic, let the backlog drain, then" \
      "re-run with --replace-trigger."
    plan_warn "replacing process's trigger (--replace-trigger): its subscription is recreated"
    plan_run_retry gcloud functions deploy "$PLAN_PROCESS_FUNCTION" "${process[@]}" "${trigger[@]}" \
      "--update-labels=rdp_deploy_hash=$fingerprint"
  fi
  plan_run_retry gcloud functions add-invoker-policy-binding "$PLAN_PROCESS_FUNCTION" \
    "--region=$REGION" "--project=$PROJECT" "--member=serviceAccount:$SA_TRIGGER" --format=none \
    --quiet
}

step_trigger_subscription() {
  plan_note "The trigger's Pub/Sub subscription (created by Eventarc): dead letters, ack deadline, retries"
  local trigger subscription current wanted
  plan_lookup trigger '<PROCESS_TRIGGER>' "the Eventarc trigger of the process function" \
    gcloud functions describe "$PLAN_PROCESS_FUNCTION" --v2 "--region=$REGION" \
    "--project=$PROJECT" '--format=value(eventTrigger.trigger)'
  [[ -n $trigger ]] || plan_die "the process function has no Eventarc trigger; did its deploy fail?"
  plan_lookup subscription '<TRIGGER_SUBSCRIPTION>' "the subscription Eventarc made for it" \
    gcloud eventarc triggers describe "$trigger" "--location=$REGION" "--project=$PROJECT" \
    '--format=value(transport.pubsub.subscription)'
  [[ -n $subscription ]] || plan_die "trigger $trigger has no Pub/Sub subscription"
  wanted=$(printf '%s\t%s\t%s\t%s\t%s' "$(cfg ACK_DEADLINE_SECONDS)" "$PLAN_DEAD_LETTER_TOPIC_PATH" \
    "$(cfg MAX_DELIVERY_ATTEMPTS)" "$(cfg MIN_RETRY_DELAY)" "$(cfg MAX_RETRY_DELAY)")
  plan_lookup current "" "update it only if its settings differ" \
    gcloud pubsub subscriptions describe "$subscription" "--project=$PROJECT" \
    '--format=value(ackDeadlineSeconds,deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts,retryPolicy.minimumBackoff,retryPolicy.maximumBackoff)'
  if [[ $current == "$wanted" ]]; then
    plan_note "  subscription settings are already in place"
  else
    plan_run_retry gcloud pubsub subscriptions update "$subscription" \
      "--dead-letter-topic=$PLAN_DEAD_LETTER_TOPIC_PATH" \
      "--max-delivery-attempts=$(cfg MAX_DELIVERY_ATTEMPTS)" \
      "--ack-deadline=$(cfg ACK_DEADLINE_SECONDS)" "--min-retry-delay=$(cfg MIN_RETRY_DELAY)" \
      "--max-retry-delay=$(cfg MAX_RETRY_DELAY)" "--project=$PROJECT" --quiet
  fi
  # Pub/Sub must be able to acknowledge a message on this subscription to dead-letter it.
  plan_run_retry gcloud pubsub subscriptions add-iam-policy-binding "$subscription" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.subscriber "--project=$PROJECT" \
    --format=none --quiet
}

step_summary() {
  local url
  plan_lookup url '<INGEST_URL>' "the URL to send records to" \
    gcloud functions describe "$PLAN_INGEST_FUNCTION" --v2 "--region=$REGION" \
    "--project=$PROJECT" '--format=value(serviceConfig.uri)'
  plan_note "Deployed. Ingest URL: $url"
  [[ $INGEST_ACCESS != no-invoker-iam-check ]] ||
    plan_note "(public through the service's disabled invoker IAM check, not allUsers: see above)"
  plan_note "Verify: scripts/smoke.sh $url <API_KEY>"
}

plan_banner "Deploying to"
preflight
step_build
step_project
step_firestore
step_pubsub
step_service_accounts
step_iam
step_functions
step_trigger_subscription
step_summary
