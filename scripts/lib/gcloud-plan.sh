# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this)
# Shared plumbing of scripts/deploy.sh and scripts/teardown.sh: flag parsing, the config file
# (deploy/config.env), the names of every resource the deployment owns, and the plan runner.
#
# The plan runner prints every command as "+ <command>" (one line, shell-quoted) before running
# it. A read-only look-up whose answer decides what happens next ends in "  # check: <why>".
# With --dry-run nothing at all is run: checks are printed and assumed to find nothing (deploy) or
# everything (teardown), and values only a look-up could give appear as <PLACEHOLDERS>.
#
# Sourced, not executed. The caller sets `set -euo pipefail` and defines usage().

PLAN_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PLAN_DRY_RUN=0
# What a check reports in a dry run: 0 = "absent" (deploy shows its creates), 1 = "present"
# (teardown shows its deletes).
PLAN_DRY_ASSUME_EXISTS=0
PLAN_PROJECT=""
PLAN_REGION="" # --region, else REGION of the config file
PLAN_CONFIG="$PLAN_REPO_ROOT/deploy/config.env"
PLAN_SHIFT=1
PLAN_FAULT_KEYS_IN_CONFIG=()
# Retries of errors Google documents as transient (see plan_is_transient): the first wait, doubled
# up to a minute, and the number of attempts. The defaults wait about 8 minutes in all: IAM changes
# typically take 2 minutes to propagate, sometimes 7 or more. Tests set the wait to 0.
PLAN_RETRY_WAIT_SECONDS=${RDP_RETRY_WAIT_SECONDS:-10}
PLAN_RETRY_ATTEMPTS=${RDP_RETRY_ATTEMPTS:-10}

# The functions' runtime variables (functions/src/lib/config.ts), passed with --set-env-vars.
PLAN_RUNTIME_VARS=(
  INGEST_TOPIC MAX_BODY_BYTES MAX_TEXT_CHARS MAX_BATCH_BODY_BYTES MAX_BATCH_RECORDS
  MAX_MESSAGE_BYTES PUBLISH_TIMEOUT_MS INGEST_COALESCE_MS RETRY_AFTER_SECONDS
  SIMULATED_WORK_MS_PER_CHAR PROCESS_TIMEOUT_SECONDS STORE_TIMEOUT_MS MAX_EVENT_AGE_SECONDS
  MAX_DELIVERY_ATTEMPTS
  AUTH_MODE API_KEY_CACHE_SECONDS AUTH_TIMEOUT_MS MAX_BUFFERED_BODY_BYTES
  REDACTION_POLICY_CACHE_SECONDS LOG_RECORD_SUCCESS DIAGNOSTICS_INTERVAL_MS
  RETENTION_DAYS TENANT_RATE_LIMIT_PER_SECOND TENANT_RATE_LIMIT_BURST_SECONDS FIRESTORE_THROTTLING
)
# Every other key deploy/config.env must define.
PLAN_SETTINGS=(
  REGION RUNTIME NODE_OPTIONS PROCESS_INGRESS DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION DEAD_LETTER_RETENTION
  INGEST_SERVICE_ACCOUNT PROCESS_SERVICE_ACCOUNT TRIGGER_SERVICE_ACCOUNT BUILD_SERVICE_ACCOUNT
  FIRESTORE_LOCATION FIRESTORE_DATA_COLLECTIONS
  INGEST_MEMORY INGEST_CPU INGEST_CONCURRENCY INGEST_TIMEOUT_SECONDS INGEST_MIN_INSTANCES
  INGEST_MAX_INSTANCES
  PROCESS_MEMORY PROCESS_CPU PROCESS_CONCURRENCY PROCESS_MIN_INSTANCES PROCESS_MAX_INSTANCES
  ACK_DEADLINE_SECONDS MIN_RETRY_DELAY MAX_RETRY_DELAY
)

# The two functions are named after their entry points (the exports of functions/lib/index.js).
PLAN_INGEST_FUNCTION=ingest
PLAN_PROCESS_FUNCTION=process

# ---------------------------------------------------------------------------------------------
# Messages and exits: 1 = a step failed, 2 = bad usage or config, 3 = refused as unsafe.

plan_note() { printf '# %s\n' "$*"; }
plan_warn() { printf 'warning: %s\n' "$*" >&2; }
plan_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
plan_config_error() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}
plan_usage_error() {
  printf 'error: %s\n\n' "$*" >&2
  usage >&2
  exit 2
}
plan_refuse() {
  printf 'REFUSED: %s\n' "$*" >&2
  exit 3
}

# ---------------------------------------------------------------------------------------------
# Flags shared by both scripts: --project ID, --region R, --config FILE, --dry-run.
# Returns 1 for a flag it does not know; sets PLAN_SHIFT to the number of words it used.

plan_take_common_flag() {
  PLAN_SHIFT=1
  case $1 in
    --dry-run) PLAN_DRY_RUN=1 ;;
    --project | --region | --config)
      if (($# < 2)) || [[ $2 == -* || -z $2 ]]; then plan_usage_error "$1 needs a value"; fi
      plan_set_flag "$1" "$2"
      PLAN_SHIFT=2
      ;;
    --project=* | --region=* | --config=*) plan_set_flag "${1%%=*}" "${1#*=}" ;;
    *) return 1 ;;
  esac
}

plan_set_flag() {
  case $1 in
    --project) PLAN_PROJECT=$2 ;;
    --region) PLAN_REGION=$2 ;;
    --config) PLAN_CONFIG=$2 ;;
  esac
}

# Validates the flags, reads the config and derives every name. Call once, after flag parsing.
plan_init() {
  [[ -n $PLAN_PROJECT ]] || plan_usage_error "--project ID is required"
  # Project ids: 6-30 lowercase letters, digits, hyphens (optionally "domain.com:" in front).
  [[ $PLAN_PROJECT =~ ^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
    plan_usage_error "not a Google Cloud project id: '$PLAN_PROJECT'"
  [[ -f $PLAN_CONFIG ]] || plan_config_error "config file not found: $PLAN_CONFIG"
  PLAN_CONFIG=$(cd "$(dirname "$PLAN_CONFIG")" && pwd -P)/$(basename "$PLAN_CONFIG")
  plan_load_config "$PLAN_CONFIG"
  PLAN_REGION=${PLAN_REGION:-$(cfg REGION)}
  [[ $PLAN_REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] ||
    plan_usage_error "not a Google Cloud region: '$PLAN_REGION'"
  plan_derive_names
}

plan_is_known_key() {
  local key=$1 known
  for known in "${PLAN_SETTINGS[@]}" "${PLAN_RUNTIME_VARS[@]}"; do
    [[ $key == "$known" ]] && return 0
  done
  return 1
}

# KEY=VALUE lines; values are literal (never evaluated), optionally quoted; "#" comments.
# Each setting lands in CFG_<KEY>. FAULT_* keys are collected for the caller to refuse.
plan_load_config() {
  local file=$1 line key value lineno=0 missing=() known
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* ]] && continue
    [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] ||
      plan_config_error "$file:$lineno: expected KEY=VALUE, got: $line"
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"([^\"]*)\"[[:space:]]*(#.*)?$ || $value =~ ^\'([^\']*)\'[[:space:]]*(#.*)?$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=${value%%[[:space:]]#*}
      value=${value%"${value##*[![:space:]]}"}
    fi
    if [[ $key == FAULT_* ]]; then
      PLAN_FAULT_KEYS_IN_CONFIG+=("$key")
      continue
    fi
    plan_is_known_key "$key" ||
      plan_config_error "$file:$lineno: unknown setting '$key' (a typo?); the settings are documented in deploy/config.env"
    printf -v "CFG_$key" '%s' "$value"
  done <"$file"
  for known in "${PLAN_SETTINGS[@]}" "${PLAN_RUNTIME_VARS[@]}"; do
    value="CFG_$known"
    [[ -n ${!value-} ]] || missing+=("$known")
  done
  ((${#missing[@]} == 0)) || plan_config_error "$file does not set: ${missing[*]}"
}

# The value of a config setting.
cfg() {
  local name="CFG_$1"
  printf '%s' "${!name}"
}

plan_sa_email() {
  local account=$1 project=$PLAN_PROJECT
  if [[ $project == *:* ]]; then
    # Domain-scoped project "example.com:proj" -> proj.example.com
    printf '%s@%s.%s.iam.gserviceaccount.com' "$account" "${project#*:}" "${project%%:*}"
  else
    printf '%s@%s.iam.gserviceaccount.com' "$account" "$project"
  fi
}

plan_derive_names() {
  SA_INGEST=$(plan_sa_email "$(cfg INGEST_SERVICE_ACCOUNT)")
  SA_PROCESS=$(plan_sa_email "$(cfg PROCESS_SERVICE_ACCOUNT)")
  SA_TRIGGER=$(plan_sa_email "$(cfg TRIGGER_SERVICE_ACCOUNT)")
  SA_BUILD=$(plan_sa_email "$(cfg BUILD_SERVICE_ACCOUNT)")
  # "email|display name" of every service account the deployment creates.
  PLAN_SERVICE_ACCOUNTS=(
    "$SA_INGEST|rdp ingest function (publishes to $(cfg INGEST_TOPIC), reads API-key hashes)"
    "$SA_PROCESS|rdp process function (reads and writes Firestore)"
    "$SA_TRIGGER|rdp Eventarc trigger identity (invokes the process function)"
    "$SA_BUILD|rdp Cloud Build identity (builds the functions)"
  )
  PLAN_TOPICS=("$(cfg INGEST_TOPIC)" "$(cfg DEAD_LETTER_TOPIC)")
  PLAN_DEAD_LETTER_TOPIC_PATH="projects/$PLAN_PROJECT/topics/$(cfg DEAD_LETTER_TOPIC)"
}

# Project-level roles, one "ROLE<TAB>MEMBER" per line. Everything else is granted on the single
# resource it concerns (topic, subscription, service account, function) and goes with it.
# Firestore IAM stops at the database: no role can be limited to one collection.
plan_project_bindings() {
  printf '%s\t%s\n' \
    roles/datastore.viewer "serviceAccount:$SA_INGEST" \
    roles/datastore.user "serviceAccount:$SA_PROCESS" \
    roles/logging.logWriter "serviceAccount:$SA_BUILD" \
    roles/artifactregistry.writer "serviceAccount:$SA_BUILD" \
    roles/storage.objectAdmin "serviceAccount:$SA_BUILD"
}

# ---------------------------------------------------------------------------------------------
# The plan runner.

# One word into PLAN_QUOTED, quoted only when the shell would otherwise change it. (No subshell:
# a run renders a thousand words.)
plan_quote() {
  if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    PLAN_QUOTED=$1
  else
    PLAN_QUOTED="'${1//\'/\'\\\'\'}'"
  fi
}

plan_render() {
  local word line=""
  for word in "$@"; do
    plan_quote "$word"
    line+="${line:+ }$PLAN_QUOTED"
  done
  printf '%s' "$line"
}

# Runs a command that changes something (or prints it, in a dry run).
plan_run() {
  printf '+ %s\n' "$(plan_render "$@")"
  ((PLAN_DRY_RUN)) && return 0
  "$@"
}

# How gcloud reports a resource that does not exist: the status of the API's answer, NOT_FOUND
# (`gcloud functions` prints it as "status=[404]"), in the line that starts the error. Any other
# failure (PERMISSION_DENIED, say, whose text may well contain "404" or "does not exist") is not
# an absence.
plan_is_not_found() {
  grep -qE '^ERROR: \([a-z0-9._-]+\) (NOT_FOUND: |ResponseError: status=\[404\]|HTTPError 404)' <<<"$1"
}

# The errors Google documents as transient right after a change, and only those:
# - an API enabled moments ago answers "has not been used in project N before or it is disabled"
#   for a few minutes;
# - a service account or service agent created moments ago "does not exist" for IAM grants until
#   it has propagated (typically 2 minutes, sometimes 7 or more);
# - a trigger's first deploy fails while the Eventarc service agent's roles propagate;
# - UNAVAILABLE, the API error model's "retry with backoff".
plan_is_transient() {
  grep -qE 'has not been used in project [0-9]+ before or it is disabled|(INVALID_ARGUMENT|FAILED_PRECONDITION|BAD_REQUEST|status=\[400\]).*[Ss]ervice account [^ ]+ does not exist|Permission denied while using the Eventarc Service Agent|necessary permissions are propagated|^ERROR: \([a-z0-9._-]+\) UNAVAILABLE: ' <<<"$1"
}

# The status word of a gcloud error ("PERMISSION_DENIED", "status=[403]"), for messages.
plan_error_status() {
  sed -nE 's/^ERROR: \([a-z0-9._-]+\) (ResponseError: (status=\[[0-9]+\])|([A-Z_]+): |(HTTPError [0-9]+)).*/\2\3\4/p' <<<"$1" |
    head -n 1
}

# plan_wait_to_retry ATTEMPT WHAT — waits before attempt ATTEMPT+1 and returns 0, or returns 1
# when the attempts are used up.
plan_wait_to_retry() {
  local attempt=$1 wait=$PLAN_RETRY_WAIT_SECONDS i
  ((attempt < PLAN_RETRY_ATTEMPTS)) || return 1
  for ((i = 1; i < attempt; i++)); do wait=$((wait * 2)); done
  ((wait <= 60)) || wait=60
  plan_warn "$2; retrying in ${wait}s (attempt $((attempt + 1)) of $PLAN_RETRY_ATTEMPTS)"
  sleep "$wait"
}

# plan_try COMMAND... — plan_run that waits out transient errors. On any other failure, or when
# the attempts are used up, returns 1 with the error text (already shown) in PLAN_LAST_ERROR.
plan_try() {
  printf '+ %s\n' "$(plan_render "$@")"
  PLAN_LAST_ERROR=""
  ((PLAN_DRY_RUN)) && return 0
  local attempt=1 err
  err=$(mktemp)
  # stderr is shown as it comes (a deploy reports its progress there) and kept for the checks.
  until { "$@" 2>&1 1>&3 3>&- | tee "$err" >&2 3>&-; } 3>&1; do
    PLAN_LAST_ERROR=$(<"$err")
    if ! plan_is_transient "$PLAN_LAST_ERROR" ||
      ! plan_wait_to_retry "$attempt" "transient error (above), documented to clear within minutes"; then
      rm -f "$err"
      return 1
    fi
    attempt=$((attempt + 1))
  done
  rm -f "$err"
}

# plan_run_retry COMMAND... — plan_try, stopping the script when the command fails for good.
plan_run_retry() {
  plan_try "$@" && return 0
  if plan_is_transient "$PLAN_LAST_ERROR"; then
    plan_die "still failing after $PLAN_RETRY_ATTEMPTS attempts: $(plan_render "$@")"
  fi
  local status
  status=$(plan_error_status "$PLAN_LAST_ERROR")
  plan_die "failed with ${status:-an error} (message above), which is not one of the transient" \
    "errors this script waits out; fix the cause and re-run. The command: $(plan_render "$@")"
}

# plan_lookup VAR DRY_VALUE WHY COMMAND...
# Runs a read-only COMMAND and stores its output in VAR: "" when the thing does not exist
# (NOT_FOUND); transient errors are waited out; any other failure stops the script. In a dry run,
# prints the command and stores DRY_VALUE.
plan_lookup() {
  local __var=$1 __dry=$2 __why=$3 __out __err __attempt=1 __status
  shift 3
  printf '+ %s  # check: %s\n' "$(plan_render "$@")" "$__why"
  if ((PLAN_DRY_RUN)); then
    printf -v "$__var" '%s' "$__dry"
    return 0
  fi
  __err=$(mktemp)
  until __out=$("$@" 2>"$__err"); do
    if plan_is_not_found "$(<"$__err")"; then
      __out=""
      break
    fi
    if plan_is_transient "$(<"$__err")" &&
      plan_wait_to_retry "$__attempt" "transient error: $(head -n 1 "$__err")"; then
      __attempt=$((__attempt + 1))
      continue
    fi
    cat "$__err" >&2
    __status=$(plan_error_status "$(<"$__err")")
    rm -f "$__err"
    plan_die "the check above failed with ${__status:-an error} (not NOT_FOUND, so not an" \
      "absence: nothing was created or changed because of it); fix the cause and re-run"
  done
  rm -f "$__err"
  __out=${__out%"${__out##*[![:space:]]}"}
  printf -v "$__var" '%s' "$__out"
}

# plan_exists WHY COMMAND... — 0 when COMMAND (a describe printing a name) finds the resource.
plan_exists() {
  local why=$1 found dry=""
  shift
  ((PLAN_DRY_ASSUME_EXISTS)) && dry="<EXISTS>"
  plan_lookup found "$dry" "$why" "$@"
  [[ -n $found ]]
}

# The project's current project-level bindings, "ROLE<TAB>MEMBER" per line, into VAR.
plan_current_project_bindings() {
  local dry=""
  ((PLAN_DRY_ASSUME_EXISTS)) && dry=$(plan_project_bindings)
  plan_lookup "$1" "$dry" "which of the roles below are already granted" \
    gcloud projects get-iam-policy "$PLAN_PROJECT" '--flatten=bindings[].members' \
    '--format=value(bindings.role,bindings.members)'
}

plan_require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || plan_die "'$tool' is not installed or not on PATH"
  done
}

plan_banner() {
  local action=$1
  plan_note "$action project $PLAN_PROJECT, region $PLAN_REGION, config $PLAN_CONFIG"
  if ((PLAN_DRY_RUN)); then
    plan_note "DRY RUN: the commands below are printed, not run."
  fi
}
