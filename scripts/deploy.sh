#!/usr/bin/env bash
# Takes a Google Cloud project, empty or already deployed, to a running, locked-down deployment:
# APIs, Firestore (database, rules, index settings, TTL policies), Pub/Sub topics and dead-letter
# queue, one service account per function, IAM, both functions, the trigger subscription's
# dead-letter policy, log-based metrics and alert policies. Safe to re-run: every step checks
# before it creates, and a function whose build and settings are unchanged is not redeployed.
# Each function's runtime options are read from its trigger (functions/src/ingest.ts,
# process.ts); per-deployment settings from deploy/config.env. Docs: README.md, section Release.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gcloud-plan.sh"

usage() {
  cat <<'EOF'
Usage: npm run deploy -- --project ID [--region R] [--config FILE] [--dry-run]
         [--notification-channel CHANNEL] [--allow-open-demo] [--allow-location-mismatch]
         [--replace-trigger]
  --project ID       Google Cloud project to deploy to (required)
  --region R         Region of the functions (default: REGION of the config)
  --config FILE      Settings file (default: deploy/config.env)
  --dry-run          Print every command in order, the checks included, and run none of them
  --notification-channel CHANNEL
                     Where the alert policies notify (an id or projects/P/notificationChannels/ID;
                     default: ALERT_NOTIFICATION_CHANNEL of the config, else none)
  --allow-open-demo  Permit AUTH_MODE=disabled (anyone may write to any tenant); demos only
  --allow-location-mismatch
                     Permit a Firestore location away from the functions' region
  --replace-trigger  Permit replacing process's trigger when its topic or identity changed: its
                     subscription is deleted with every message still waiting in it
Refuses to run while any FAULT_* variable is set, in the environment or in the config file.
EOF
}

ALLOW_OPEN_DEMO=0 ALLOW_LOCATION_MISMATCH=0 REPLACE_TRIGGER=0
VALUE_FLAGS+=(--notification-channel)
while (($#)); do
  case $1 in
    --allow-open-demo) ALLOW_OPEN_DEMO=1 ;;
    --allow-location-mismatch) ALLOW_LOCATION_MISMATCH=1 ;;
    --replace-trigger) REPLACE_TRIGGER=1 ;;
    -h | --help) usage && exit 0 ;;
    *) common_flag "$@" || usage_error "unknown argument: $1" && shift "$SHIFT" && continue ;;
  esac
  shift
done
init_plan
FUNCTIONS_DIR=$ROOT/functions
CHANNEL=${FLAG_notification_channel:-$(cfg ALERT_NOTIFICATION_CHANNEL)}
[[ -z $CHANNEL || $CHANNEL == projects/* ]] || CHANNEL="projects/$PROJECT/notificationChannels/$CHANNEL"

# ---------------------------------------------------------------------------------------------
# Safety checks (a dry run makes them too: it shows what a real run would do).

found=()
while IFS= read -r name; do
  [[ $name == FAULT_* ]] && found+=("$name (set in the environment)")
done < <(compgen -e)
for name in "${FAULT_KEYS_IN_CONFIG[@]}"; do found+=("$name (set in $CONFIG)"); done
((${#found[@]} == 0)) || refuse "fault injection is for local runs only, and these FAULT_*" \
  "variables are set:$(printf '\n  - %s' "${found[@]}")"$'\n'"Unset them (and remove them from" \
  "the config file) before deploying."
[[ $(cfg AUTH_MODE) != disabled ]] || ((ALLOW_OPEN_DEMO)) || refuse "AUTH_MODE=disabled in" \
  "$CONFIG would let anyone on the internet write to any tenant. Pass --allow-open-demo if this" \
  "is a throw-away demo project."
# The config file is what gets deployed: a different value exported in this shell (left over from
# a local run, say) would be ignored, so say so instead.
drift=()
for name in "${RUNTIME_VARS[@]}"; do
  [[ -z ${!name+set} || ${!name} == "$(cfg "$name")" ]] || drift+=("$name=${!name} (config: $(cfg "$name"))")
done
((${#drift[@]} == 0)) || refuse "these runtime variables are exported in your shell with values" \
  "that differ from $CONFIG, which is what gets deployed:$(printf '\n  - %s' "${drift[@]}")"$'\n'"Unset them, or change the config file."
retention=$(cfg DEAD_LETTER_RETENTION)
[[ $retention =~ ^([0-9]+)d$ ]] && ((BASH_REMATCH[1] <= 31)) ||
  config_error "DEAD_LETTER_RETENTION must be whole days, at most 31d (the Pub/Sub maximum)"

# The Firestore location nearest the functions: their continent's multi-region where there is one
# (eur3: Belgium and Finland; nam5: central US), else their own region.
nearest_location() {
  case $1 in europe-*) echo eur3 ;; us-*) echo nam5 ;; *) echo "$1" ;; esac
}
# Every write goes to Firestore and a database's location never changes, so a database away from
# the functions' region (or its multi-region) is refused unless asked for.
check_location() { # LOCATION WHAT [ANOTHER WAY OUT]
  [[ $1 == "$REGION" || $1 == "$(nearest_location "$REGION")" ]] && return 0
  ((ALLOW_LOCATION_MISMATCH)) &&
    warn "$2 is $1, away from the functions' region $REGION (--allow-location-mismatch)" && return 0
  refuse "$2 is $1, but the functions run in $REGION: every write would travel between the two," \
    "and the data would live in $1 for good (a database's location cannot change). Deploy to a" \
    "region of $1 with --region${3:+, $3}, or pass --allow-location-mismatch."
}
FIRESTORE_LOCATION=$(cfg FIRESTORE_LOCATION)
if [[ $FIRESTORE_LOCATION == auto ]]; then
  FIRESTORE_LOCATION=$(nearest_location "$REGION")
else
  check_location "$FIRESTORE_LOCATION" "FIRESTORE_LOCATION in $CONFIG" \
    "set FIRESTORE_LOCATION=auto (gives $(nearest_location "$REGION") for $REGION)"
fi

# ---------------------------------------------------------------------------------------------
# Steps.

mapfile -t ENV_PAIRS < <(for name in "${RUNTIME_VARS[@]}" NODE_OPTIONS; do printf '%s=%s\n' "$name" "$(cfg "$name")"; done)

# Builds, then reads each function's options from its trigger, loading the code with nothing but
# the deployed variables in its environment (so the functions' own config check runs too). A dry
# run builds nothing and reads the same declarations from the TypeScript source.
step_build() {
  note "Build the functions (functions/src -> functions/lib) and read their options from the triggers"
  local entry=$FUNCTIONS_DIR/lib/index.js loader=() options name flags
  run rm -rf "$FUNCTIONS_DIR/lib"
  run npm --prefix "$ROOT" run build
  ((DRY_RUN)) && entry=$FUNCTIONS_DIR/src/index.ts loader=(--import tsx)
  local -a read=(env -i "${ENV_PAIRS[@]}" "$(command -v node)" "${loader[@]}"
    "$ROOT/scripts/lib/function-options.cjs" "$entry")
  printf '+ %s  # check: %s\n' "$(render "${read[@]}")" "the options declared in the triggers"
  options=$(cd "$ROOT" && "${read[@]}") || die "could not load the functions (message above)"
  declare -gA OPTIONS=()
  while read -r name flags; do OPTIONS[$name]=$flags; done <<<"$options"
  note "  ${options//$'\n'/$'\n'#   }"
  local timeout=${OPTIONS[process]#*--timeout=}
  ((${timeout%%s*} <= $(cfg ACK_DEADLINE_SECONDS))) || config_error "process's timeout" \
    "(${timeout%% *}) exceeds ACK_DEADLINE_SECONDS, so Pub/Sub would redeliver events still running"
}

step_project() {
  note "Project and APIs"
  look PROJECT_NUMBER '<PROJECT_NUMBER>' "the project number names the Pub/Sub service agent" \
    gcloud projects describe "$PROJECT" '--format=value(projectNumber)'
  [[ -n $PROJECT_NUMBER ]] || die "project $PROJECT not found, or you cannot see it"
  PUBSUB_AGENT="service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
  # Without billing, enabling Cloud Functions, Cloud Build or Cloud Run fails half-way through.
  local billing
  look billing True "enable the APIs only on a project with billing enabled" \
    gcloud billing projects describe "$PROJECT" '--format=value(billingEnabled)'
  [[ $billing == True ]] || die "billing is not enabled on $PROJECT (Cloud Functions gen2 needs" \
    "it): link a billing account with 'gcloud billing projects link $PROJECT" \
    "--billing-account=ACCOUNT_ID' (list yours with 'gcloud billing accounts list') and re-run"
  run gcloud services enable cloudresourcemanager.googleapis.com iam.googleapis.com \
    serviceusage.googleapis.com cloudfunctions.googleapis.com run.googleapis.com \
    cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com \
    logging.googleapis.com monitoring.googleapis.com eventarc.googleapis.com \
    pubsub.googleapis.com firestore.googleapis.com firebaserules.googleapis.com \
    "--project=$PROJECT" --quiet
  # The service agents must exist before they are granted roles below.
  for service in pubsub eventarc; do
    run gcloud beta services identity create "--service=$service.googleapis.com" \
      "--project=$PROJECT" --format=none --quiet
  done
  wait_for_service_agents
}

# Google grants each service agent its role when its API is enabled, and a first deploy fails
# until those grants exist ("Permission denied while using the Eventarc Service Agent").
wait_for_service_agents() {
  local agent="serviceAccount:service-$PROJECT_NUMBER" current entry missing=() attempt=1
  local -a needed=(
    "roles/cloudfunctions.serviceAgent"$'\t'"$agent@gcf-admin-robot.iam.gserviceaccount.com"
    "roles/run.serviceAgent"$'\t'"$agent@serverless-robot-prod.iam.gserviceaccount.com"
    "roles/eventarc.serviceAgent"$'\t'"$agent@gcp-sa-eventarc.iam.gserviceaccount.com"
    "roles/pubsub.serviceAgent"$'\t'"$agent@gcp-sa-pubsub.iam.gserviceaccount.com"
  )
  while :; do
    project_policy current "wait until the service agents hold their roles"
    ((DRY_RUN)) && return 0
    missing=()
    for entry in "${needed[@]}"; do grep -qxF "$entry" <<<"$current" || missing+=("$entry"); done
    ((${#missing[@]})) || return 0
    wait_to_retry "$attempt" "${#missing[@]} service agent role(s) not granted yet" || break
    attempt=$((attempt + 1))
  done
  for entry in "${missing[@]}"; do
    warn "missing: ${entry#*$'\t'} has no ${entry%%$'\t'*}; grant it with: gcloud projects" \
      "add-iam-policy-binding $PROJECT --member=${entry#*$'\t'} --role=${entry%%$'\t'*}"
  done
  die "the service agents above still lack their roles, which Google grants when an API is" \
    "enabled; grant them (commands above) or wait, and re-run"
}

step_firestore() {
  note "Firestore: the (default) database, rules, single-field index settings and TTL policies"
  local database type location ttl group
  look database "" "create the database only if there is none" \
    gcloud firestore databases describe '--database=(default)' "--project=$PROJECT" \
    '--format=value(type,locationId)'
  type=${database%%$'\t'*} location=${database#*$'\t'}
  if [[ -z $type ]]; then
    run gcloud firestore databases create '--database=(default)' \
      "--location=$FIRESTORE_LOCATION" --type=firestore-native "--project=$PROJECT" --quiet
  elif [[ $type != FIRESTORE_NATIVE ]]; then
    die "the (default) database of $PROJECT is $type; the functions need Firestore Native mode"
  else
    check_location "$location" "the (default) database of $PROJECT"
    note "  (default) database exists in $location, keeping it"
  fi
  check_firebase_credentials
  # The same firebase.json, rules and index files as `firebase deploy --only firestore`; the CLI
  # bills its calls to GOOGLE_CLOUD_QUOTA_PROJECT, whatever quota project the credentials name.
  run env "GOOGLE_CLOUD_QUOTA_PROJECT=$PROJECT" "$ROOT/node_modules/.bin/firebase" deploy \
    --only=firestore "--project=$PROJECT" "--config=$ROOT/firebase.json" --non-interactive
  # Every processed and failed document carries expire_at (its retention, per tenant); Firestore
  # deletes it within about a day of that time once the collection group's TTL policy is on.
  for group in "${TTL_COLLECTION_GROUPS[@]}"; do
    look ttl "" "turn TTL on only where it is not on already" gcloud firestore fields describe \
      expire_at "--collection-group=$group" '--database=(default)' "--project=$PROJECT" \
      '--format=value(ttlConfig.state)'
    if [[ $ttl == ACTIVE || $ttl == CREATING ]]; then
      note "  TTL on $group.expire_at is $ttl"
    else
      run gcloud firestore fields ttls update expire_at "--collection-group=$group" \
        '--database=(default)' --enable-ttl --async "--project=$PROJECT" --quiet
    fi
  done
}

# The Firebase CLI signs in with Application Default Credentials, not with gcloud's own login:
# stop before it fails half-way with a message about another project.
check_firebase_credentials() {
  local file quota check=(gcloud auth application-default print-access-token)
  printf '+ %s  # check: %s\n' "$(render "${check[@]}")" "Application Default Credentials for the Firebase CLI"
  ((DRY_RUN)) && return 0
  "${check[@]}" >/dev/null 2>&1 || die "no usable Application Default Credentials, which the" \
    "Firebase CLI deploys the Firestore rules with: run 'gcloud auth application-default login'" \
    "and re-run"
  file=${GOOGLE_APPLICATION_CREDENTIALS:-${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json}
  quota=$(node -e 'try { process.stdout.write(require(process.argv[1]).quota_project_id || "") } catch {}' "$file")
  [[ -z $quota || $quota == "$PROJECT" ]] ||
    note "  the credentials' quota project is $quota; the Firebase CLI is told to use $PROJECT"
}

step_pubsub() {
  note "Pub/Sub: ingest topic, dead-letter topic and the subscription that keeps dead letters"
  local topic hold=$(cfg DEAD_LETTER_SUBSCRIPTION) kept
  for topic in "${TOPICS[@]}"; do
    if exists "create the topic only if absent" gcloud pubsub topics describe "$topic" \
      "--project=$PROJECT" '--format=value(name)'; then
      note "  topic $topic exists"
    else
      run gcloud pubsub topics create "$topic" "--project=$PROJECT" --quiet
    fi
  done
  look kept "" "create the dead-letter subscription only if absent" gcloud pubsub subscriptions \
    describe "$hold" "--project=$PROJECT" '--format=value(messageRetentionDuration)'
  if [[ $kept == "$((${retention%d} * 86400))s" ]]; then
    note "  subscription $hold exists"
  elif [[ -n $kept ]]; then
    run gcloud pubsub subscriptions update "$hold" "--message-retention-duration=$retention" \
      "--project=$PROJECT" --quiet
  else
    run gcloud pubsub subscriptions create "$hold" "--topic=$(cfg DEAD_LETTER_TOPIC)" \
      "--message-retention-duration=$retention" --expiration-period=never --ack-deadline=60 \
      "--project=$PROJECT" --quiet
  fi
}

step_service_accounts() {
  note "Service accounts: one per function, one for the trigger, one for the build"
  local entry
  for entry in "${SERVICE_ACCOUNTS[@]}"; do
    if exists "create the service account only if absent" gcloud iam service-accounts describe \
      "${entry%%|*}" "--project=$PROJECT" '--format=value(email)'; then
      note "  ${entry%%|*} exists"
    else
      run gcloud iam service-accounts create "${entry%%@*}" "--display-name=${entry#*|}" \
        "--project=$PROJECT" --quiet
    fi
  done
}

step_iam() {
  note "IAM: least privilege, granted on the narrowest resource available"
  local current role member
  project_policy current
  while IFS=$'\t' read -r role member; do
    if grep -qxF "$role"$'\t'"$member" <<<"$current"; then
      note "  $member already has $role"
    else
      run gcloud projects add-iam-policy-binding "$PROJECT" "--member=$member" "--role=$role" \
        --condition=None --format=none --quiet
    fi
  done < <(project_bindings)
  # ingest may publish to its topic and nothing else. Pub/Sub moves undeliverable messages to the
  # dead-letter topic as its service agent, and signs pushes with the trigger identity's tokens.
  run gcloud pubsub topics add-iam-policy-binding "$(cfg INGEST_TOPIC)" \
    "--member=serviceAccount:$SA_INGEST" --role=roles/pubsub.publisher "--project=$PROJECT" \
    --format=none --quiet
  run gcloud pubsub topics add-iam-policy-binding "$(cfg DEAD_LETTER_TOPIC)" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.publisher "--project=$PROJECT" \
    --format=none --quiet
  run gcloud iam service-accounts add-iam-policy-binding "$SA_TRIGGER" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/iam.serviceAccountTokenCreator \
    "--project=$PROJECT" --format=none --quiet
}

# A digest of what a deploy puts in place: the files gcloud uploads (by their path inside
# functions/) and the flags less --source, so another checkout of the same code changes nothing.
fingerprint() {
  ((DRY_RUN)) && printf '<SOURCE_HASH>' && return 0
  {
    (cd "$FUNCTIONS_DIR" && find lib proto -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum &&
      sha256sum package.json package-lock.json .gcloudignore)
    printf '%s\n' "$@" | grep -v '^--source='
  } | sha256sum | cut -c1-40
}

# What is live of function NAME: FN_STATE (ACTIVE, FAILED...; "" when absent), FN_HASH (its
# rdp_deploy_hash label), FN_TRIGGER ("topic<TAB>identity<TAB>retry policy"; empty for HTTP).
describe_function() {
  local live
  look live "" "what is live: state, deploy label and trigger" gcloud functions describe "$1" \
    --v2 "--region=$REGION" "--project=$PROJECT" \
    '--format=value(state,labels.rdp_deploy_hash,eventTrigger.pubsubTopic,eventTrigger.serviceAccountEmail,eventTrigger.retryPolicy)'
  IFS='|' read -r FN_STATE FN_HASH FN_TRIGGER <<<"${live//$'\t'/|}" || true
  FN_TRIGGER=${FN_TRIGGER//|/$'\t'}
}

# How ingest is open: "allUsers" (invoker role), "no-invoker-iam-check" (its Cloud Run service
# skips the IAM check) or "" (closed). A function's service has its name.
ingest_access() {
  local bindings disabled
  INGEST_ACCESS=""
  look bindings "" "is ingest open to allUsers?" gcloud run services get-iam-policy ingest \
    "--region=$REGION" "--project=$PROJECT" '--flatten=bindings[].members' \
    '--format=value(bindings.role,bindings.members)'
  grep -qxF $'roles/run.invoker\tallUsers' <<<"$bindings" && INGEST_ACCESS=allUsers && return 0
  look disabled "" "or does its service skip the invoker IAM check?" gcloud run services describe \
    ingest "--region=$REGION" "--project=$PROJECT" \
    "--format=value(metadata.annotations.'run.googleapis.com/invoker-iam-disabled')"
  [[ ${disabled,,} != true ]] || INGEST_ACCESS=no-invoker-iam-check
}

# ingest is public at the HTTP layer; API keys authenticate every request. An organization that
# enforces domain restricted sharing refuses allUsers in any IAM policy; Google's documented way
# to serve the public then is to turn off the Cloud Run invoker IAM check of the service.
make_ingest_public() {
  if try gcloud functions add-invoker-policy-binding ingest "--region=$REGION" \
    "--project=$PROJECT" --member=allUsers --format=none --quiet; then
    ((DRY_RUN)) && note "  (if an organization policy refuses allUsers: gcloud run services" \
      "update ingest --no-invoker-iam-check, see README, Release)"
    INGEST_ACCESS=allUsers && return 0
  fi
  grep -qE 'do not belong to a permitted customer|domain restriction organi[sz]ation policy|iam\.allowedPolicyMemberDomains' <<<"$LAST_ERROR" ||
    die "could not make ingest public: $(error_status "$LAST_ERROR") (message above). ingest is" \
      "deployed but answers 403 to everyone; fix the cause and re-run"
  warn "an organization policy (domain restricted sharing) refuses allUsers as invoker of ingest." \
    "Falling back to Google's documented alternative: turning off the Cloud Run invoker IAM check" \
    "of the ingest service. ingest stays public; API keys authenticate every request."
  try gcloud run services update ingest "--region=$REGION" "--project=$PROJECT" \
    --no-invoker-iam-check --quiet || die "the fallback failed too ($(error_status "$LAST_ERROR")," \
    "message above): ingest is deployed but answers 403 to everyone. Ask an organization admin to" \
    "allow allUsers on this project (an exception to iam.allowedPolicyMemberDomains) or to let it" \
    "turn off the invoker IAM check (run.managed.requireInvokerIam), then re-run"
  INGEST_ACCESS=no-invoker-iam-check
}

# gcloud writes a function's labels only within a deploy, so the rdp_deploy_hash label says which
# build and settings are live. It is never trusted alone: a function is skipped only if it is also
# ACTIVE and the outcome of its later steps is in place (DONE=1); otherwise the last run stopped
# part-way, and it is deployed again.
is_done() { # NAME FINGERPRINT DONE
  [[ $FN_STATE == ACTIVE && $FN_HASH == "$2" ]] || return 1
  (($3)) && note "  $1 is unchanged since its last deploy, which completed; skipping" && return 0
  note "  $1 carries this build's label, but its last deploy did not complete (see below);" \
    "deploying it again"
  return 1
}

step_functions() {
  note "Functions (Cloud Functions gen2), with the options declared in their triggers"
  local hash wanted
  local -a common=(--gen2 "--region=$REGION" "--project=$PROJECT" "--runtime=$(cfg RUNTIME)"
    "--source=$FUNCTIONS_DIR" "--build-service-account=projects/$PROJECT/serviceAccounts/$SA_BUILD"
    "--set-env-vars=$(IFS=, && echo "${ENV_PAIRS[*]}")" --quiet)
  # No --[no-]allow-unauthenticated: gcloud would rewrite ingest's invoker binding on every
  # deploy. make_ingest_public opens it, once.
  # shellcheck disable=SC2206  # the options are flags without spaces
  local -a ingest=("${common[@]}" --entry-point=ingest --trigger-http
    "--run-service-account=$SA_INGEST" ${OPTIONS[ingest]})
  # Private: only the trigger identity may invoke it, and only from inside Google's network.
  # shellcheck disable=SC2206
  local -a process=("${common[@]}" --entry-point=process --no-allow-unauthenticated
    "--run-service-account=$SA_PROCESS" ${OPTIONS[process]})
  # shellcheck disable=SC2206
  local -a trigger=(${OPTIONS[process:trigger]} "--trigger-service-account=$SA_TRIGGER")

  hash=$(fingerprint "${ingest[@]}")
  describe_function ingest
  ingest_access
  if ! is_done ingest "$hash" "$([[ -n $INGEST_ACCESS ]] && echo 1 || echo 0)"; then
    run gcloud functions deploy ingest "${ingest[@]}" "--update-labels=rdp_deploy_hash=$hash"
    # Checked again: a deploy updates the Cloud Run service, which may reset what was set on it.
    [[ -z $INGEST_ACCESS ]] || ingest_access
    [[ -n $INGEST_ACCESS ]] || make_ingest_public
  fi
  note "  ingest is public through: $INGEST_ACCESS"

  # Trigger flags on an update put the whole event trigger in gcloud's update mask, and a replaced
  # trigger takes its Pub/Sub subscription with it (backlog, pending retries, dead-letter policy).
  # So an update that keeps the trigger passes none of them, and gcloud keeps the live one.
  hash=$(fingerprint "${process[@]}" "${trigger[@]}")
  describe_function process
  wanted=$(printf '%s\t%s\tRETRY_POLICY_RETRY' "projects/$PROJECT/topics/$(cfg INGEST_TOPIC)" "$SA_TRIGGER")
  if [[ -z $FN_STATE ]]; then
    run gcloud functions deploy process "${process[@]}" "${trigger[@]}" "--update-labels=rdp_deploy_hash=$hash"
  elif [[ $FN_TRIGGER == "$wanted" ]]; then
    if ! is_done process "$hash" 1; then
      note "  its trigger is as configured: deploying without trigger flags, so it stays"
      run gcloud functions deploy process "${process[@]}" "--update-labels=rdp_deploy_hash=$hash"
    fi
  else
    ((REPLACE_TRIGGER)) || refuse "process's trigger is '${FN_TRIGGER//$'\t'/ }', the config wants" \
      "'${wanted//$'\t'/ }'. Replacing it deletes its Pub/Sub subscription with every message" \
      "still waiting in it. Stop ingest traffic, let the backlog drain, then re-run with --replace-trigger."
    warn "replacing process's trigger (--replace-trigger): its subscription is recreated"
    run gcloud functions deploy process "${process[@]}" "${trigger[@]}" "--update-labels=rdp_deploy_hash=$hash"
  fi
  run gcloud functions add-invoker-policy-binding process "--region=$REGION" "--project=$PROJECT" \
    "--member=serviceAccount:$SA_TRIGGER" --format=none --quiet
}

step_trigger_subscription() {
  note "The trigger's Pub/Sub subscription (created by Eventarc): dead letters, ack deadline, retries"
  local trigger subscription current wanted
  look trigger '<PROCESS_TRIGGER>' "the Eventarc trigger of the process function" gcloud functions \
    describe process --v2 "--region=$REGION" "--project=$PROJECT" '--format=value(eventTrigger.trigger)'
  [[ -n $trigger ]] || die "the process function has no Eventarc trigger; did its deploy fail?"
  look subscription '<TRIGGER_SUBSCRIPTION>' "the subscription Eventarc made for it" gcloud eventarc \
    triggers describe "$trigger" "--location=$REGION" "--project=$PROJECT" \
    '--format=value(transport.pubsub.subscription)'
  [[ -n $subscription ]] || die "trigger $trigger has no Pub/Sub subscription"
  wanted=$(printf '%s\t%s\t%s\t%s\t%s' "$(cfg ACK_DEADLINE_SECONDS)" "$DEAD_LETTER_TOPIC_PATH" \
    "$(cfg MAX_DELIVERY_ATTEMPTS)" "$(cfg MIN_RETRY_DELAY)" "$(cfg MAX_RETRY_DELAY)")
  look current "" "update it only if its settings differ" gcloud pubsub subscriptions describe \
    "$subscription" "--project=$PROJECT" \
    '--format=value(ackDeadlineSeconds,deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts,retryPolicy.minimumBackoff,retryPolicy.maximumBackoff)'
  if [[ $current == "$wanted" ]]; then
    note "  subscription settings are already in place"
  else
    run gcloud pubsub subscriptions update "$subscription" \
      "--dead-letter-topic=$DEAD_LETTER_TOPIC_PATH" "--max-delivery-attempts=$(cfg MAX_DELIVERY_ATTEMPTS)" \
      "--ack-deadline=$(cfg ACK_DEADLINE_SECONDS)" "--min-retry-delay=$(cfg MIN_RETRY_DELAY)" \
      "--max-retry-delay=$(cfg MAX_RETRY_DELAY)" "--project=$PROJECT" --quiet
  fi
  # Pub/Sub must be able to acknowledge a message on this subscription to dead-letter it.
  run gcloud pubsub subscriptions add-iam-policy-binding "$subscription" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.subscriber "--project=$PROJECT" \
    --format=none --quiet
}

# One alert policy as JSON: NAME WHAT-TO-DO FILTER ALIGNER PERIOD THRESHOLD DURATION [GROUP_BY].
alert_policy() {
  local group="" channels=""
  [[ -z ${8-} ]] || group=",\"groupByFields\":[\"$8\"]"
  [[ -z $CHANNEL ]] || channels="\"$CHANNEL\""
  printf '{"displayName":"%s %s","combiner":"OR","notificationChannels":[%s],' "$ALERT_PREFIX" "$1" "$channels"
  printf '"documentation":{"mimeType":"text/markdown","content":"%s See docs/OPERATIONS.md."},' "$2"
  printf '"conditions":[{"displayName":"%s","conditionThreshold":{"filter":"%s",' "$1" "$3"
  printf '"aggregations":[{"alignmentPeriod":"%s","perSeriesAligner":"%s","crossSeriesReducer":"REDUCE_SUM"%s}],' "$5" "$4" "$group"
  printf '"comparison":"COMPARISON_GT","thresholdValue":%s,"duration":"%s","trigger":{"count":1}}}]}' "$6" "$7"
}

step_monitoring() {
  note "Log-based metrics and alert policies${CHANNEL:+, notifying $CHANNEL}"
  local metric name policy found user=logging.googleapis.com/user revision=resource.type=\\\"cloud_run_revision\\\"
  for metric in "${LOG_METRICS[@]}"; do
    if exists "create the metric only if absent, else apply this release's definition" gcloud \
      logging metrics describe "$metric" "--project=$PROJECT" '--format=value(name)'; then
      run gcloud logging metrics update "$metric" "--config-from-file=$ROOT/deploy/monitoring/$metric.yaml" "--project=$PROJECT" --quiet
    else
      run gcloud logging metrics create "$metric" "--config-from-file=$ROOT/deploy/monitoring/$metric.yaml" "--project=$PROJECT" --quiet
    fi
  done
  local -a policies=(
    "$(alert_policy "dead letters waiting" "Messages the worker could not handle after MAX_DELIVERY_ATTEMPTS wait on $(cfg DEAD_LETTER_SUBSCRIPTION): replay them with npm run replay." \
      "metric.type=\\\"pubsub.googleapis.com/subscription/num_undelivered_messages\\\" AND resource.type=\\\"pubsub_subscription\\\" AND resource.label.subscription_id=\\\"$(cfg DEAD_LETTER_SUBSCRIPTION)\\\"" \
      ALIGN_MAX 60s 0 300s)"
    "$(alert_policy "records failed" "Records were recorded in failed_logs (by reason): npm run status, then npm run replay." \
      "metric.type=\\\"$user/rdp_records_failed\\\" AND $revision" ALIGN_DELTA 300s 0 0s metric.label.reason)"
    "$(alert_policy "ingest 5xx" "More than 10 ingest requests a 5-minute window were answered 5xx: records not accepted." \
      "metric.type=\\\"$user/rdp_ingest_5xx\\\" AND $revision" ALIGN_DELTA 300s 10 0s)"
  )
  for policy in "${policies[@]}"; do
    name=${policy#*\"displayName\":\"} name=${name%%\"*}
    alert_policies found "$name"
    if [[ -n $found ]]; then
      run gcloud alpha monitoring policies update "${found%%$'\n'*}" "--policy=$policy" "--project=$PROJECT" --quiet
    else
      run gcloud alpha monitoring policies create "--policy=$policy" "--project=$PROJECT" --quiet
    fi
  done
}

step_summary() {
  local url
  look url '<INGEST_URL>' "the URL to send records to" gcloud functions describe ingest --v2 \
    "--region=$REGION" "--project=$PROJECT" '--format=value(serviceConfig.uri)'
  note "Deployed. Ingest URL: $url"
  [[ $INGEST_ACCESS != no-invoker-iam-check ]] ||
    note "(public through the service's disabled invoker IAM check, not allUsers: see above)"
  note "Verify: scripts/smoke.sh $url <API_KEY>"
}

if ((!DRY_RUN)); then
  for tool in gcloud npm node sha256sum; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed or not on PATH"
  done
  [[ -x $ROOT/node_modules/.bin/firebase ]] || die "run 'npm ci' at the repository root first"
  [[ -f $ROOT/functions/package-lock.json ]] ||
    die "functions/package-lock.json is missing; Cloud Build installs from it with npm ci"
fi
banner "Deploying to"
step_build
step_project
step_firestore
step_pubsub
step_service_accounts
step_iam
step_functions
step_trigger_subscription
step_monitoring
step_summary
