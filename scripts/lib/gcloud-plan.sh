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
PLAN_REGION=us-central1
PLAN_CONFIG="$PLAN_REPO_ROOT/deploy/config.env"
PLAN_SHIFT=1
PLAN_FAULT_KEYS_IN_CONFIG=()

# The functions' runtime variables (functions/src/lib/config.ts), passed with --set-env-vars.
PLAN_RUNTIME_VARS=(
  INGEST_TOPIC MAX_BODY_BYTES MAX_TEXT_CHARS MAX_BATCH_BODY_BYTES MAX_BATCH_RECORDS
  MAX_MESSAGE_BYTES PUBLISH_TIMEOUT_MS INGEST_COALESCE_MS RETRY_AFTER_SECONDS
  SIMULATED_WORK_MS_PER_CHAR PROCESS_TIMEOUT_SECONDS STORE_TIMEOUT_MS MAX_EVENT_AGE_SECONDS
  MAX_DELIVERY_ATTEMPTS
  AUTH_MODE API_KEY_CACHE_SECONDS AUTH_TIMEOUT_MS MAX_BUFFERED_BODY_BYTES
  REDACTION_POLICY_CACHE_SECONDS
)
# Every other key deploy/config.env must define.
PLAN_SETTINGS=(
  RUNTIME NODE_OPTIONS PROCESS_INGRESS DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION DEAD_LETTER_RETENTION
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
  [[ $PLAN_REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] ||
    plan_usage_error "not a Google Cloud region: '$PLAN_REGION'"
  [[ -f $PLAN_CONFIG ]] || plan_config_error "config file not found: $PLAN_CONFIG"
  PLAN_CONFIG=$(cd "$(dirname "$PLAN_CONFIG")" && pwd -P)/$(basename "$PLAN_CONFIG")
  plan_load_config "$PLAN_CONFIG"
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

# One word, quoted only when the shell would otherwise change it.
plan_quote() {
  if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  else
    local escaped=${1//\'/\'\\\'\'}
    printf "'%s'" "$escaped"
  fi
}

plan_render() {
  local word line=""
  for word in "$@"; do
    line+="${line:+ }$(plan_quote "$word")"
  done
  printf '%s' "$line"
}

# Runs a command that changes something (or prints it, in a dry run).
plan_run() {
  printf '+ %s\n' "$(plan_render "$@")"
  ((PLAN_DRY_RUN)) && return 0
  "$@"
}

# Like plan_run, retrying a few times: fresh service accounts and service agents take a minute or
# two to be usable everywhere, so the first IAM grant or deploy on a new project can fail.
plan_run_retry() {
  printf '+ %s\n' "$(plan_render "$@")"
  ((PLAN_DRY_RUN)) && return 0
  local attempt=1 delay=15
  until "$@"; do
    if ((attempt >= 4)); then
      plan_die "failed $attempt times: $(plan_render "$@")"
    fi
    plan_warn "attempt $attempt failed; retrying in ${delay}s (IAM changes take time to propagate)"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
  done
}

# plan_lookup VAR DRY_VALUE WHY COMMAND...
# Runs a read-only COMMAND and stores its output in VAR: "" when the thing does not exist; any
# other failure stops the script. In a dry run, prints the command and stores DRY_VALUE.
plan_lookup() {
  local __var=$1 __dry=$2 __why=$3 __out __err
  shift 3
  printf '+ %s  # check: %s\n' "$(plan_render "$@")" "$__why"
  if ((PLAN_DRY_RUN)); then
    printf -v "$__var" '%s' "$__dry"
    return 0
  fi
  __err=$(mktemp)
  if __out=$("$@" 2>"$__err"); then
    rm -f "$__err"
    __out=${__out%"${__out##*[![:space:]]}"}
    printf -v "$__var" '%s' "$__out"
    return 0
  fi
  if grep -qiE 'not[ _]?found|does not exist|404' "$__err"; then
    rm -f "$__err"
    printf -v "$__var" '%s' ""
    return 0
  fi
  cat "$__err" >&2
  rm -f "$__err"
  plan_die "the check above failed (not a 'not found'); fix the cause and re-run"
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
