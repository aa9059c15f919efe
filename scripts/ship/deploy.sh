#!/usr/bin/env bash
# Takes a Google Cloud project, empty or deployed, to a running, locked-down deployment; safe to
# re-run. Options come from the triggers, the rest from deploy/config.env. Docs: README (Release).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gcloud-plan.sh"

usage() {
  cat <<'EOF'
Usage: npm run deploy -- --project ID [--region R] [--config FILE] [--dry-run]
         [--notification-channel CHANNEL] [--allow-open-demo] [--allow-location-mismatch]
         [--replace-trigger]
  --region R, --config FILE   default: REGION of the config, deploy/config.env
  --dry-run                   print every command in order, the checks included; run none
  --notification-channel C    where alerts notify (default: ALERT_NOTIFICATION_CHANNEL, or none)
  --allow-open-demo           permit AUTH_MODE=disabled (anyone may write to any tenant)
  --allow-location-mismatch   permit a Firestore location away from the functions' region
  --replace-trigger           permit replacing process's trigger, and its subscription with every
                              message still waiting in it
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
[[ -z $CHANNEL || $CHANNEL == projects/* ]] || CHANNEL=projects/$PROJECT/notificationChannels/$CHANNEL

# Safety checks (a dry run makes them too: it shows what a real run would do).
found=""
for name in $(compgen -e | grep '^FAULT_' || true); do found+=$'\n'"  - $name (set in the environment)"; done
for name in "${FAULT_KEYS_IN_CONFIG[@]}"; do found+=$'\n'"  - $name (set in $CONFIG)"; done
[[ -z $found ]] || refuse "fault injection is for local runs only, and these FAULT_* variables" \
  "are set:$found"$'\n'"Unset them (and remove them from the config file) before deploying."
[[ $(cfg AUTH_MODE) != disabled ]] || ((ALLOW_OPEN_DEMO)) || refuse "AUTH_MODE=disabled in" \
  "$CONFIG would let anyone write to any tenant. Pass --allow-open-demo for a throw-away demo."
# The config file is what gets deployed: a different value exported here would be ignored.
found=""
for name in "${RUNTIME_VARS[@]}"; do
  [[ -z ${!name+set} || ${!name} == "$(cfg "$name")" ]] || found+=$'\n'"  - $name=${!name} (config: $(cfg "$name"))"
done
[[ -z $found ]] || refuse "these runtime variables are exported in your shell with values that" \
  "differ from $CONFIG, which is what gets deployed:$found"$'\n'"Unset them, or change the config."
retention=$(cfg DEAD_LETTER_RETENTION)
[[ $retention =~ ^([0-9]+)d$ ]] && ((BASH_REMATCH[1] <= 31)) ||
  config_error "DEAD_LETTER_RETENTION must be whole days, at most 31d (the Pub/Sub maximum)"

# Firestore nearest the functions: their continent's multi-region (eur3, nam5), else their region.
# A database's location never changes, so any other is refused unless asked for.
nearest_location() { case $1 in europe-*) echo eur3 ;; us-*) echo nam5 ;; *) echo "$1" ;; esac; }
check_location() { # LOCATION WHAT [ANOTHER WAY OUT]
  [[ $1 == "$REGION" || $1 == "$(nearest_location "$REGION")" ]] && return 0
  ((ALLOW_LOCATION_MISMATCH)) &&
    warn "$2 is $1, away from the functions' region $REGION (--allow-location-mismatch)" && return 0
  refuse "$2 is $1, but the functions run in $REGION: every write would travel between the two," \
    "and the data would live in $1 for good (a database's location cannot change). Deploy to a" \
    "region of $1 with --region${3:+, $3}, or pass --allow-location-mismatch."
}
FIRESTORE_LOCATION=$(cfg FIRESTORE_LOCATION)
[[ $FIRESTORE_LOCATION != auto ]] || FIRESTORE_LOCATION=$(nearest_location "$REGION")
[[ $(cfg FIRESTORE_LOCATION) == auto ]] || check_location "$FIRESTORE_LOCATION" \
  "FIRESTORE_LOCATION in $CONFIG" "set FIRESTORE_LOCATION=auto ($(nearest_location "$REGION") for $REGION)"

# Loads the functions with only the deployed variables, so their own config check runs too, and
# reads each one's options from its trigger (in a dry run, from the TypeScript source).
step_build() {
  note "Build the functions, and read their options from the triggers"
  local entry=$FUNCTIONS_DIR/lib/index.js loader=() options name value flags timeout
  run rm -rf "$FUNCTIONS_DIR/lib"
  run npm --prefix "$ROOT" run build
  ((DRY_RUN)) && entry=$FUNCTIONS_DIR/src/index.ts loader=(--require tsx/cjs)
  [[ -d $FUNCTIONS_DIR/node_modules ]] || ((!DRY_RUN)) || die "functions/node_modules is missing:" \
    "run 'npm run build' once (it installs the functions' dependencies) to let a dry run load them"
  ENV_PAIRS=()
  for name in "${RUNTIME_VARS[@]}" NODE_OPTIONS; do
    value=CFG_$name
    ENV_PAIRS+=("$name=${!value-}")
  done
  local -a read=(env -i "${ENV_PAIRS[@]}" "$(command -v node)" "${loader[@]}"
    "$ROOT/scripts/ship/lib/function-options.cjs" "$entry")
  show "the options declared in the triggers" "${read[@]}"
  options=$(cd "$ROOT" && "${read[@]}") || die "could not load the functions (message above)"
  note "  ${options//$'\n'/$'\n'#   }"
  declare -gA OPTIONS=()
  while read -r name flags; do OPTIONS[$name]=$flags; done <<<"$options"
  timeout=${OPTIONS[process]#*--timeout=} timeout=${timeout%%s*}
  ((timeout <= $(cfg ACK_DEADLINE_SECONDS))) || config_error "process's timeout (${timeout}s)" \
    "exceeds ACK_DEADLINE_SECONDS, so Pub/Sub would redeliver events still running"
}

step_project() {
  note "Project and APIs"
  local billing service apis=(cloudresourcemanager iam serviceusage cloudfunctions run cloudbuild
    artifactregistry storage logging monitoring eventarc pubsub firestore firebaserules)
  look PROJECT_NUMBER '<PROJECT_NUMBER>' "the project number names the Pub/Sub service agent" \
    gcloud projects describe "$PROJECT" '--format=value(projectNumber)'
  [[ -n $PROJECT_NUMBER ]] || die "project $PROJECT not found, or you cannot see it"
  PUBSUB_AGENT="service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
  # Without billing, enabling Cloud Functions, Cloud Build or Cloud Run fails half-way through.
  look billing True "enable the APIs only on a project with billing enabled" \
    gcloud billing projects describe "$PROJECT" '--format=value(billingEnabled)'
  [[ $billing == True ]] || die "billing is not enabled on $PROJECT (Cloud Functions gen2 needs" \
    "it): link a billing account with 'gcloud billing projects link $PROJECT" \
    "--billing-account=ACCOUNT_ID' (list yours with 'gcloud billing accounts list') and re-run"
  change services enable "${apis[@]/%/.googleapis.com}"
  for service in pubsub eventarc; do # agents that are granted roles below
    change_silently beta services identity create "--service=$service.googleapis.com"
  done
  wait_for_service_agents
}

# Google grants each service agent its role when its API is enabled; a first deploy fails before.
wait_for_service_agents() {
  local current entry missing=() attempt=1 needed=() pair
  for pair in cloudfunctions:gcf-admin-robot run:serverless-robot-prod eventarc:gcp-sa-eventarc \
    pubsub:gcp-sa-pubsub; do
    needed+=("roles/${pair%%:*}.serviceAgent"$'\t'"serviceAccount:service-$PROJECT_NUMBER@${pair#*:}.iam.gserviceaccount.com")
  done
  while :; do
    project_policy current "wait until the service agents hold their roles"
    ((DRY_RUN)) && return 0
    missing=()
    for entry in "${needed[@]}"; do has_line "$entry" "$current" || missing+=("$entry"); done
    ((${#missing[@]})) || return 0
    wait_to_retry "$attempt" "${#missing[@]} service agent role(s) not granted yet" || break
    attempt=$((attempt + 1))
  done
  for entry in "${missing[@]}"; do
    warn "missing: grant it with: gcloud projects add-iam-policy-binding $PROJECT" \
      "--member=${entry#*$'\t'} --role=${entry%%$'\t'*}"
  done
  die "the service agents above still lack their roles, which Google grants when an API is" \
    "enabled; grant them (commands above) or wait, and re-run"
}

step_firestore() {
  note "Firestore: the (default) database, rules, single-field index settings and TTL policies"
  local database type location ttl group quota
  describe database "" "create the database only if there is none" type,locationId \
    firestore databases describe '--database=(default)'
  type=${database%%$'\t'*} location=${database#*$'\t'}
  if [[ -z $type ]]; then
    change firestore databases create '--database=(default)' "--location=$FIRESTORE_LOCATION" \
      --type=firestore-native
  elif [[ $type != FIRESTORE_NATIVE ]]; then
    die "the (default) database of $PROJECT is $type; the functions need Firestore Native mode"
  else
    check_location "$location" "the (default) database of $PROJECT"
    note "  (default) database exists in $location, keeping it"
  fi
  # The Firebase CLI signs in with Application Default Credentials, not gcloud's login: stop before
  # it fails half-way. It bills GOOGLE_CLOUD_QUOTA_PROJECT, whatever the credentials' quota project.
  local adc=(gcloud auth application-default print-access-token)
  show "Application Default Credentials for the Firebase CLI" "${adc[@]}"
  if ((!DRY_RUN)); then
    "${adc[@]}" >/dev/null 2>&1 || die "no usable Application Default Credentials, which the" \
      "Firebase CLI deploys the Firestore rules with: run 'gcloud auth application-default login'"
    quota=${GOOGLE_APPLICATION_CREDENTIALS:-${CLOUDSDK_CONFIG:-$HOME/.config/gcloud}/application_default_credentials.json}
    quota=$(sed -nE 's/.*"quota_project_id": *"([^"]*)".*/\1/p' "$quota" 2>/dev/null || true)
    [[ -z $quota || $quota == "$PROJECT" ]] ||
      note "  the credentials' quota project is $quota; the Firebase CLI is told to use $PROJECT"
  fi
  run env "GOOGLE_CLOUD_QUOTA_PROJECT=$PROJECT" "$ROOT/node_modules/.bin/firebase" deploy \
    --only=firestore "--project=$PROJECT" "--config=$ROOT/firebase.json" --non-interactive
  # Documents carry expire_at (their tenant's retention); Firestore deletes them within a day after.
  for group in "${TTL_COLLECTION_GROUPS[@]}"; do
    describe ttl "" "turn TTL on where it is not on yet" ttlConfig.state firestore indexes fields \
      describe expire_at "--collection-group=$group" '--database=(default)'
    if [[ $ttl == ACTIVE || $ttl == CREATING ]]; then
      note "  TTL on $group.expire_at is $ttl"
    else
      change firestore fields ttls update expire_at "--collection-group=$group" '--database=(default)' \
        --enable-ttl --async
    fi
  done
}

step_pubsub() {
  note "Pub/Sub: ingest topic, dead-letter topic and the subscription that keeps dead letters"
  local topic hold kept
  for topic in "${TOPICS[@]}"; do
    if_found no "topic $topic" pubsub topics describe "$topic" -- pubsub topics create "$topic"
  done
  hold=$(cfg DEAD_LETTER_SUBSCRIPTION)
  describe kept "" "create the dead-letter subscription only if absent" messageRetentionDuration \
    pubsub subscriptions describe "$hold"
  if [[ $kept == "$((${retention%d} * 86400))s" ]]; then
    note "  subscription $hold exists"
  elif [[ -n $kept ]]; then
    change pubsub subscriptions update "$hold" "--message-retention-duration=$retention"
  else
    change pubsub subscriptions create "$hold" "--topic=$(cfg DEAD_LETTER_TOPIC)" \
      "--message-retention-duration=$retention" --expiration-period=never --ack-deadline=60
  fi
}

step_iam() {
  note "Service accounts (one per function, the trigger's, the build's) and least-privilege IAM"
  local entry current role member
  for entry in "${SERVICE_ACCOUNTS[@]}"; do
    if_found no "${entry%%|*}" iam service-accounts describe "${entry%%|*}" -- \
      iam service-accounts create "${entry%%@*}" "--display-name=${entry#*|}"
  done
  project_policy current
  while IFS=$'\t' read -r role member; do
    if has_line "$role"$'\t'"$member" "$current"; then
      note "  $member already has $role"
    else
      run gcloud projects add-iam-policy-binding "$PROJECT" "--member=$member" "--role=$role" \
        --condition=None --format=none --quiet
    fi
  done < <(project_bindings)
  # ingest may publish to its topic and nothing else. Pub/Sub moves undeliverable messages to the
  # dead-letter topic as its service agent, and signs pushes with the trigger identity's tokens.
  change_silently pubsub topics add-iam-policy-binding "$(cfg INGEST_TOPIC)" \
    "--member=serviceAccount:$SA_INGEST" --role=roles/pubsub.publisher
  change_silently pubsub topics add-iam-policy-binding "$(cfg DEAD_LETTER_TOPIC)" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.publisher
  change_silently iam service-accounts add-iam-policy-binding "$SA_TRIGGER" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/iam.serviceAccountTokenCreator
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

# Function NAME as live: FN_STATE ("" when absent), FN_HASH (its label), FN_TRIGGER (topic, identity
# and retry policy, tab-separated).
describe_function() {
  local live
  describe live "" "what is live: state, deploy label and trigger" \
    state,labels.rdp_deploy_hash,eventTrigger.pubsubTopic,eventTrigger.serviceAccountEmail,eventTrigger.retryPolicy \
    functions describe "$1" --v2 "--region=$REGION"
  IFS='|' read -r FN_STATE FN_HASH FN_TRIGGER <<<"${live//$'\t'/|}" || true
  FN_TRIGGER=${FN_TRIGGER//|/$'\t'}
}

# How ingest is open: allUsers (invoker role), no-invoker-iam-check (on its Cloud Run service) or "".
ingest_access() {
  local invokers disabled
  INGEST_ACCESS=""
  bindings invokers "" "is ingest open to allUsers?" run services get-iam-policy ingest \
    "--region=$REGION" "--project=$PROJECT"
  has_line $'roles/run.invoker\tallUsers' "$invokers" && INGEST_ACCESS=allUsers && return 0
  describe disabled "" "or does its service skip the invoker IAM check?" \
    "metadata.annotations.'run.googleapis.com/invoker-iam-disabled'" run services describe ingest \
    "--region=$REGION"
  [[ ${disabled,,} != true ]] || INGEST_ACCESS=no-invoker-iam-check
}

# ingest is public; API keys authenticate. Where domain restricted sharing refuses allUsers, Google
# documents turning off the Cloud Run invoker IAM check of the service instead.
make_ingest_public() {
  if try gcloud functions add-invoker-policy-binding ingest "--region=$REGION" \
    "--project=$PROJECT" --member=allUsers --format=none --quiet; then
    ((DRY_RUN)) && note "  (if an organization policy refuses allUsers: gcloud run services" \
      "update ingest --no-invoker-iam-check, see README, Release)"
    INGEST_ACCESS=allUsers && return 0
  fi
  any_line 'do not belong to a permitted customer|domain restriction organi[sz]ation policy|iam\.allowedPolicyMemberDomains' "$LAST_ERROR" ||
    die "could not make ingest public: $(status_of "$LAST_ERROR") (message above). ingest is" \
      "deployed but answers 403 to everyone; fix the cause and re-run"
  warn "an organization policy (domain restricted sharing) refuses allUsers as invoker of ingest." \
    "Falling back to Google's documented alternative: turning off the Cloud Run invoker IAM check" \
    "of the ingest service. ingest stays public; API keys authenticate every request."
  try gcloud run services update ingest "--region=$REGION" "--project=$PROJECT" \
    --no-invoker-iam-check --quiet || die "the fallback failed too ($(status_of "$LAST_ERROR")," \
    "message above): ingest is deployed but answers 403 to everyone. Ask an organization admin to" \
    "allow allUsers here (iam.allowedPolicyMemberDomains) or to let it turn off the invoker IAM" \
    "check (run.managed.requireInvokerIam), then re-run"
  INGEST_ACCESS=no-invoker-iam-check
}

# The rdp_deploy_hash label (set only with a deploy) says which build is live; it is trusted only
# when the function is ACTIVE and its later steps are in place (DONE=1), else the last run stopped.
is_done() { # NAME FINGERPRINT DONE
  [[ $FN_STATE == ACTIVE && $FN_HASH == "$2" ]] || return 1
  (($3)) && note "  $1 is unchanged since its last deploy, which completed; skipping" && return 0
  note "  $1 carries this build's label, but its last deploy did not complete; deploying it again"
  return 1
}

step_functions() {
  note "Functions (Cloud Functions gen2), with the options declared in their triggers"
  local hash wanted
  # shellcheck disable=SC2206  # the options are flags without spaces
  local -a common=(--gen2 "--region=$REGION" "--project=$PROJECT" "--runtime=$(cfg RUNTIME)"
    "--source=$FUNCTIONS_DIR" "--build-service-account=projects/$PROJECT/serviceAccounts/$SA_BUILD"
    "--set-env-vars=$(IFS=, && echo "${ENV_PAIRS[*]}")" --quiet)
  # No --[no-]allow-unauthenticated: gcloud would rewrite its invoker binding on every deploy.
  local -a ingest=("${common[@]}" --entry-point=ingest --trigger-http
    "--run-service-account=$SA_INGEST" ${OPTIONS[ingest]})
  # Private: only the trigger identity may invoke it, and only from inside Google's network.
  local -a process=("${common[@]}" --entry-point=process --no-allow-unauthenticated
    "--run-service-account=$SA_PROCESS" ${OPTIONS[process]})
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

  # Trigger flags put the whole trigger in gcloud's update mask, and a replaced trigger takes its
  # subscription with it (backlog, retries, dead-letter policy): an update that keeps it passes none.
  hash=$(fingerprint "${process[@]}" "${trigger[@]}")
  describe_function process
  wanted=projects/$PROJECT/topics/$(cfg INGEST_TOPIC)$'\t'$SA_TRIGGER$'\t'RETRY_POLICY_RETRY
  if [[ -n $FN_STATE && $FN_TRIGGER == "$wanted" ]]; then
    is_done process "$hash" 1 || {
      note "  its trigger is as configured: deploying without trigger flags, so it stays"
      run gcloud functions deploy process "${process[@]}" "--update-labels=rdp_deploy_hash=$hash"
    }
  else
    [[ -z $FN_STATE ]] || ((REPLACE_TRIGGER)) || refuse "process's trigger is" \
      "'${FN_TRIGGER//$'\t'/ }', the config wants '${wanted//$'\t'/ }'. Replacing it deletes its" \
      "Pub/Sub subscription with every message still waiting in it. Stop ingest traffic, let the" \
      "backlog drain, then re-run with --replace-trigger."
    [[ -z $FN_STATE ]] || warn "replacing process's trigger (--replace-trigger): its subscription is recreated"
    run gcloud functions deploy process "${process[@]}" "${trigger[@]}" "--update-labels=rdp_deploy_hash=$hash"
  fi
  run gcloud functions add-invoker-policy-binding process "--region=$REGION" "--project=$PROJECT" \
    "--member=serviceAccount:$SA_TRIGGER" --format=none --quiet
}

step_trigger_subscription() {
  note "The trigger's Pub/Sub subscription (made by Eventarc): dead letters, ack deadline, retries"
  local trigger subscription current wanted
  describe trigger '<PROCESS_TRIGGER>' "the Eventarc trigger of the process function" \
    eventTrigger.trigger functions describe process --v2 "--region=$REGION"
  [[ -n $trigger ]] || die "the process function has no Eventarc trigger; did its deploy fail?"
  describe subscription '<TRIGGER_SUBSCRIPTION>' "the subscription Eventarc made for it" \
    transport.pubsub.subscription eventarc triggers describe "$trigger" "--location=$REGION"
  [[ -n $subscription ]] || die "trigger $trigger has no Pub/Sub subscription"
  wanted=$(printf '%s\t%s\t%s\t%s\t%s' "$(cfg ACK_DEADLINE_SECONDS)" "$DEAD_LETTER_TOPIC_PATH" \
    "$(cfg MAX_DELIVERY_ATTEMPTS)" "$(cfg MIN_RETRY_DELAY)" "$(cfg MAX_RETRY_DELAY)")
  describe current "" "update it only if its settings differ" \
    ackDeadlineSeconds,deadLetterPolicy.deadLetterTopic,deadLetterPolicy.maxDeliveryAttempts,retryPolicy.minimumBackoff,retryPolicy.maximumBackoff \
    pubsub subscriptions describe "$subscription"
  if [[ $current == "$wanted" ]]; then
    note "  subscription settings are already in place"
  else
    change pubsub subscriptions update "$subscription" "--dead-letter-topic=$DEAD_LETTER_TOPIC_PATH" \
      "--max-delivery-attempts=$(cfg MAX_DELIVERY_ATTEMPTS)" "--ack-deadline=$(cfg ACK_DEADLINE_SECONDS)" \
      "--min-retry-delay=$(cfg MIN_RETRY_DELAY)" "--max-retry-delay=$(cfg MAX_RETRY_DELAY)"
  fi
  # Pub/Sub must be able to acknowledge a message on this subscription to dead-letter it.
  change_silently pubsub subscriptions add-iam-policy-binding "$subscription" \
    "--member=serviceAccount:$PUBSUB_AGENT" --role=roles/pubsub.subscriber
}

step_monitoring() {
  note "Log-based metrics and alert policies (deploy/monitoring/)${CHANNEL:+, notifying $CHANNEL}"
  local metric verb policy name found
  for metric in "${LOG_METRICS[@]}"; do # an existing one gets this release's definition again
    exists "create the metric only if absent" logging metrics describe "$metric" && verb=update || verb=create
    change logging metrics "$verb" "$metric" "--config-from-file=$ROOT/deploy/monitoring/$metric.yaml"
  done
  # Each policy as one line of JSON, for this deployment; found by display name, else created.
  while IFS= read -r policy; do
    name=${policy#*\"displayName\":\"} name=${name%%\"*}
    alert_policies found "$name"
    # shellcheck disable=SC2046  # the policy's name, if any, is one word
    change alpha monitoring policies $([[ -n $found ]] && echo update "${found%%$'\n'*}" || echo create) \
      "--policy=$policy"
  done < <(node -e 'const [subscription, channel, ...files] = process.argv.slice(1);
    for (const file of files) {
      const text = require("fs").readFileSync(file, "utf8");
      const policy = JSON.parse(text.replaceAll("${DEAD_LETTER_SUBSCRIPTION}", subscription));
      console.log(JSON.stringify({ ...policy, notificationChannels: channel ? [channel] : [] }));
    }' "$(cfg DEAD_LETTER_SUBSCRIPTION)" "$CHANNEL" "$ROOT"/deploy/monitoring/alert-*.json)
}

step_summary() {
  local url
  describe url '<INGEST_URL>' "the URL to send records to" serviceConfig.uri functions describe ingest \
    --v2 "--region=$REGION"
  note "Deployed. Ingest URL: $url"
  [[ $INGEST_ACCESS != no-invoker-iam-check ]] ||
    note "(public through the service's disabled invoker IAM check, not allUsers: see above)"
  note "Verify: scripts/ship/smoke.sh $url <API_KEY>"
}

for tool in gcloud npm node sha256sum; do
  ((DRY_RUN)) || command -v "$tool" >/dev/null || die "'$tool' is not installed or not on PATH"
done
((DRY_RUN)) || [[ -x $ROOT/node_modules/.bin/firebase && -f $FUNCTIONS_DIR/package-lock.json ]] ||
  die "run 'npm ci' at the repository root first (functions/package-lock.json is needed too)"
banner "Deploying to"
step_build
step_project
step_firestore
step_pubsub
step_iam
step_functions
step_trigger_subscription
step_monitoring
step_summary
