# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this)
# Shared by deploy.sh and teardown.sh (which set -euo pipefail and define usage()): flags, config,
# names and the plan runner. A command prints as "+ <command>" before it runs, a look-up that
# decides a step ends in "  # check: <why>". A dry run runs nothing: look-ups answer "absent"
# (deploy) or "present" (teardown). Exits: 1 a step failed, 2 bad usage or config, 3 refused.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
DRY_RUN=0
DRY_EXISTS=0 # what a look-up answers in a dry run: 1 = present (teardown)
PROJECT="" REGION="" CONFIG=$ROOT/deploy/config.env
VALUE_FLAGS=(--project --region --config)
# Transient errors: waits doubling to a minute, about 8 in all (IAM takes 2 minutes, sometimes 7).
RETRY_WAIT=${RDP_RETRY_WAIT_SECONDS:-10}
RETRY_ATTEMPTS=${RDP_RETRY_ATTEMPTS:-10}

# The functions' runtime variables (functions/src/lib/config.ts), passed with --set-env-vars.
RUNTIME_VARS=(
  INGEST_TOPIC MAX_BODY_BYTES MAX_TEXT_CHARS MAX_BATCH_BODY_BYTES MAX_BATCH_RECORDS
  MAX_MESSAGE_BYTES PUBLISH_TIMEOUT_MS INGEST_COALESCE_MS RETRY_AFTER_SECONDS
  SIMULATED_WORK_MS_PER_CHAR PROCESS_TIMEOUT_SECONDS STORE_TIMEOUT_MS MAX_EVENT_AGE_SECONDS
  MAX_DELIVERY_ATTEMPTS AUTH_MODE API_KEY_CACHE_SECONDS AUTH_TIMEOUT_MS MAX_BUFFERED_BODY_BYTES
  REDACTION_POLICY_CACHE_SECONDS LOG_RECORD_SUCCESS DIAGNOSTICS_INTERVAL_MS
  RETENTION_DAYS TENANT_RATE_LIMIT_PER_SECOND TENANT_RATE_LIMIT_BURST_SECONDS FIRESTORE_THROTTLING
)
# Every other key of deploy/config.env; ALERT_NOTIFICATION_CHANNEL may be empty.
SETTINGS=(
  REGION FIRESTORE_LOCATION RUNTIME NODE_OPTIONS DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION
  DEAD_LETTER_RETENTION INGEST_SERVICE_ACCOUNT PROCESS_SERVICE_ACCOUNT TRIGGER_SERVICE_ACCOUNT
  BUILD_SERVICE_ACCOUNT FIRESTORE_DATA_COLLECTIONS ACK_DEADLINE_SECONDS MIN_RETRY_DELAY
  MAX_RETRY_DELAY
)
OPTIONAL_SETTINGS=(ALERT_NOTIFICATION_CHANNEL)
# Firestore collection groups whose documents carry `expire_at` (functions/src/lib/paths.ts).
TTL_COLLECTION_GROUPS=(processed_logs failed_logs dead_letters)
# Log-based metrics, one definition file each in deploy/monitoring/.
LOG_METRICS=(rdp_records_failed rdp_ingest_5xx)
ALERT_PREFIX="rdp:" # alert policies are found again by their display name, which starts so

note() { printf '# %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2 && exit 1; }
config_error() { printf 'error: %s\n' "$*" >&2 && exit 2; }
usage_error() { printf 'error: %s\n\n' "$*" >&2 && usage >&2 && exit 2; }
refuse() { printf 'REFUSED: %s\n' "$*" >&2 && exit 3; }

# --dry-run or one of VALUE_FLAGS ("--flag v" or "--flag=v", into FLAG_<name>); 1 for any other
# word. SHIFT is the number of words used.
common_flag() {
  local flag=${1%%=*} value=${1#*=}
  SHIFT=1
  [[ $1 == --dry-run ]] && DRY_RUN=1 && return 0
  [[ " ${VALUE_FLAGS[*]} " == *" $flag "* ]] || return 1
  if [[ $1 != *=* ]]; then
    [[ $# -ge 2 && -n $2 && $2 != -* ]] || usage_error "$1 needs a value"
    value=$2 SHIFT=2
  fi
  flag=${flag#--}
  printf -v "FLAG_${flag//-/_}" '%s' "$value"
}

# Checks the flags, reads the config and derives the names. Call once, after the flags.
init_plan() {
  PROJECT=${FLAG_project-} CONFIG=${FLAG_config:-$CONFIG}
  [[ -n $PROJECT ]] || usage_error "--project ID is required"
  [[ $PROJECT =~ ^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
    usage_error "not a Google Cloud project id: '$PROJECT'"
  [[ -f $CONFIG ]] || config_error "config file not found: $CONFIG"
  CONFIG=$(cd "$(dirname "$CONFIG")" && pwd -P)/$(basename "$CONFIG")
  load_config
  REGION=${FLAG_region:-$(cfg REGION)}
  [[ $REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || usage_error "not a Google Cloud region: '$REGION'"
  local domain="" id=$PROJECT
  [[ $PROJECT == *:* ]] && domain=".${PROJECT%%:*}" id=${PROJECT#*:} # example.com:proj
  for name in INGEST PROCESS TRIGGER BUILD; do
    printf -v "SA_$name" '%s@%s%s.iam.gserviceaccount.com' "$(cfg "${name}_SERVICE_ACCOUNT")" "$id" "$domain"
  done
  # "email|display name" of every service account the deployment creates.
  SERVICE_ACCOUNTS=(
    "$SA_INGEST|rdp ingest function (publishes to $(cfg INGEST_TOPIC), reads API-key hashes)"
    "$SA_PROCESS|rdp process function (reads and writes Firestore)"
    "$SA_TRIGGER|rdp Eventarc trigger identity (invokes the process function)"
    "$SA_BUILD|rdp Cloud Build identity (builds the functions)"
  )
  TOPICS=("$(cfg INGEST_TOPIC)" "$(cfg DEAD_LETTER_TOPIC)")
  DEAD_LETTER_TOPIC_PATH="projects/$PROJECT/topics/$(cfg DEAD_LETTER_TOPIC)"
}

# KEY=VALUE lines, values literal (never evaluated), optionally quoted; "#" comments. Unknown keys
# are refused (a typo fails loudly); FAULT_* keys are collected for deploy.sh to refuse.
load_config() {
  local line key value lineno=0 missing=()
  FAULT_KEYS_IN_CONFIG=()
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* ]] && continue
    [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || config_error "$CONFIG:$lineno: expected KEY=VALUE"
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"([^\"]*)\"[[:space:]]*(#.*)?$ || $value =~ ^\'([^\']*)\'[[:space:]]*(#.*)?$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=${value%%[[:space:]]#*}
      value=${value%"${value##*[![:space:]]}"}
    fi
    [[ $key == FAULT_* ]] && FAULT_KEYS_IN_CONFIG+=("$key") && continue
    [[ " ${SETTINGS[*]} ${RUNTIME_VARS[*]} ${OPTIONAL_SETTINGS[*]} " == *" $key "* ]] ||
      config_error "$CONFIG:$lineno: unknown setting '$key' (a typo?); deploy/config.env documents them"
    [[ $value != *,* ]] || [[ $key == FIRESTORE_DATA_COLLECTIONS ]] ||
      config_error "$key must not contain a comma"
    printf -v "CFG_$key" '%s' "$value"
  done <"$CONFIG"
  for key in "${SETTINGS[@]}" "${RUNTIME_VARS[@]}"; do
    value="CFG_$key"
    [[ -n ${!value-} ]] || missing+=("$key")
  done
  ((${#missing[@]} == 0)) || config_error "$CONFIG does not set: ${missing[*]}"
}

cfg() {
  local name="CFG_$1"
  printf '%s' "${!name-}"
}

# Project-level roles, "ROLE<TAB>MEMBER" per line. Everything else is granted on the one resource
# it concerns and goes with it. (Firestore IAM stops at the database.)
project_bindings() {
  printf '%s\t%s\n' roles/datastore.viewer "serviceAccount:$SA_INGEST" \
    roles/datastore.user "serviceAccount:$SA_PROCESS" \
    roles/logging.logWriter "serviceAccount:$SA_BUILD" \
    roles/artifactregistry.writer "serviceAccount:$SA_BUILD" \
    roles/storage.objectAdmin "serviceAccount:$SA_BUILD"
}

# The words as one shell line, each quoted only where the shell would change it.
render() {
  local word line=""
  for word; do
    [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]] || word="'${word//\'/\'\\\'\'}'"
    line+="${line:+ }$word"
  done
  printf '%s' "$line"
}

# show WHY WORDS...: the plan's line for a command, "+ WORDS", and "  # check: WHY" for a look-up.
show() {
  printf '+ '
  render "${@:2}"
  [[ -z $1 ]] || printf '  # check: %s' "$1"
  printf '\n'
}

# any_line REGEX TEXT: 0 when a line of TEXT matches REGEX (extended). Bash's own matching rather
# than grep's: a deploy makes about a hundred of these checks, and each process costs milliseconds.
any_line() {
  local line
  while IFS= read -r line; do [[ $line =~ $1 ]] && return 0; done <<<"$2"
  return 1
}

# has_line LINE TEXT: 0 when LINE is one of the lines of TEXT.
has_line() { [[ $'\n'$2$'\n' == *$'\n'"$1"$'\n'* ]]; }

# gcloud reports an absence as NOT_FOUND (`gcloud functions`: "status=[404]") at the start of the
# error. Any other failure (PERMISSION_DENIED, whose text may hold "404") is not an absence.
is_not_found() {
  any_line '^ERROR: \([a-z0-9._-]+\) (NOT_FOUND: |ResponseError: status=\[404\]|HTTPError 404)' "$1"
}

# The errors Google documents as transient right after a change, and only those: an API enabled
# moments ago; a service account or agent not yet propagated to IAM; the Eventarc agent's roles
# on a first trigger; a log-based metric not yet visible to Monitoring; UNAVAILABLE.
is_transient() {
  any_line 'has not been used in project [0-9]+ before or it is disabled|(INVALID_ARGUMENT|FAILED_PRECONDITION|BAD_REQUEST|status=\[400\]).*[Ss]ervice account [^ ]+ does not exist|Permission denied while using the Eventarc Service Agent|necessary permissions are propagated|Cannot find metric\(s\) that match type|^ERROR: \([a-z0-9._-]+\) UNAVAILABLE: ' "$1"
}

# The status word of a gcloud error ("PERMISSION_DENIED", "status=[403]"), else "an error".
status_of() {
  local status
  status=$(sed -nE 's/^ERROR: \([a-z0-9._-]+\) (ResponseError: (status=\[[0-9]+\])|([A-Z_]+): |(HTTPError [0-9]+)).*/\2\3\4/p' <<<"$1")
  printf '%s' "${status%%$'\n'*}"
  [[ -n $status ]] || printf 'an error'
}

# wait_to_retry ATTEMPT WHAT: waits before attempt ATTEMPT+1, or returns 1 when they are used up.
wait_to_retry() {
  local wait=$RETRY_WAIT i
  (($1 < RETRY_ATTEMPTS)) || return 1
  for ((i = 1; i < $1 && wait < 60; i++)); do wait=$((wait * 2)); done
  ((wait <= 60)) || wait=60
  warn "$2; retrying in ${wait}s (attempt $(($1 + 1)) of $RETRY_ATTEMPTS)"
  sleep "$wait"
}

ERRORS=$(mktemp)
trap 'rm -f "$ERRORS"' EXIT
shown() { { "$@" 2>&1 1>&3 3>&- | tee "$ERRORS" >&2 3>&-; } 3>&1; }
hidden() { "$@" 2>"$ERRORS"; }

# retrying shown|hidden COMMAND...: runs COMMAND, its errors shown as they come or kept, waiting
# out transient errors; on any other failure returns 1 with the error in $ERRORS and LAST_ERROR.
retrying() {
  local attempt=1
  until "$@"; do
    LAST_ERROR=$(<"$ERRORS")
    is_transient "$LAST_ERROR" &&
      wait_to_retry "$attempt" "transient error: ${LAST_ERROR%%$'\n'*}" || return 1
    attempt=$((attempt + 1))
  done
}

# try COMMAND...: prints and runs a command that changes something, waiting out transient errors.
try() {
  show "" "$@"
  LAST_ERROR=""
  ((DRY_RUN)) || retrying shown "$@"
}

# run COMMAND...: try, stopping the script when the command fails for good.
run() {
  try "$@" && return 0
  is_transient "$LAST_ERROR" && die "still failing after $RETRY_ATTEMPTS attempts: $(render "$@")"
  die "failed with $(status_of "$LAST_ERROR") (message above), which is not one of the transient" \
    "errors this script waits out; fix the cause and re-run. The command: $(render "$@")"
}

# A gcloud command that changes something in the project, run; the second prints nothing.
change() { run gcloud "$@" "--project=$PROJECT" --quiet; }
change_silently() { run gcloud "$@" "--project=$PROJECT" --format=none --quiet; }

# look VAR DRY_VALUE WHY COMMAND...: runs a read-only COMMAND into VAR ("" when NOT_FOUND);
# transient errors are waited out, any other failure stops the script. A dry run stores DRY_VALUE.
look() {
  local __var=$1 __dry=$2 __out
  show "$3" "${@:4}"
  shift 3
  ((DRY_RUN)) && printf -v "$__var" '%s' "$__dry" && return 0
  if ! __out=$(retrying hidden "$@") && ! is_not_found "$(<"$ERRORS")"; then
    cat "$ERRORS" >&2
    die "the check above failed with $(status_of "$(<"$ERRORS")") (not NOT_FOUND, so not an" \
      "absence: nothing was created or changed because of it); fix the cause and re-run"
  fi
  printf -v "$__var" '%s' "${__out%"${__out##*[![:space:]]}"}"
}

# describe VAR DRY_VALUE WHY FIELDS GCLOUD_ARGS...: look, with gcloud on this project printing FIELDS.
describe() { look "$1" "$2" "$3" gcloud "${@:5}" "--project=$PROJECT" "--format=value($4)"; }

# exists WHY GCLOUD_ARGS...: 0 when the describe of GCLOUD_ARGS finds the resource.
exists() {
  local found dry=""
  ((DRY_EXISTS)) && dry="<EXISTS>"
  describe found "$dry" "$1" name "${@:2}"
  [[ -n $found ]]
}

# if_found yes|no WHAT DESCRIBE_ARGS... -- CHANGE_ARGS...: runs gcloud CHANGE_ARGS (see change) when
# gcloud DESCRIBE_ARGS finds the resource (yes) or not (no); else notes WHAT is there or gone.
if_found() {
  local want=$1 what=$2 at found=no
  shift 2
  for ((at = 1; at <= $#; at++)); do [[ ${!at} == -- ]] && break; done
  exists "$([[ $want == yes ]] && echo "delete only what is there" || echo "create only if absent")" \
    "${@:1:at-1}" && found=yes
  [[ $found != "$want" ]] || { change "${@:at+1}" && return 0; }
  note "  $what is already $([[ $want == yes ]] && echo gone || echo there)"
}

# bindings VAR DRY_VALUE WHY GCLOUD_ARGS...: look at an IAM policy's "ROLE<TAB>MEMBER" lines.
bindings() {
  look "$1" "$2" "$3" gcloud "${@:4}" '--flatten=bindings[].members' \
    '--format=value(bindings.role,bindings.members)'
}

# The project's project-level bindings into VAR.
project_policy() {
  local dry=""
  ((DRY_EXISTS)) && dry=$(project_bindings)
  bindings "$1" "$dry" "${2:-which of the roles below are already granted}" projects get-iam-policy "$PROJECT"
}

# The alert policies of this deployment named DISPLAY_NAME ("" for all of them), one name a line.
alert_policies() {
  local filter="displayName=starts_with(\"$ALERT_PREFIX\")"
  [[ -z $2 ]] || filter="displayName=\"$2\""
  look "$1" "${3-}" "${4:-find the policy by its display name}" gcloud alpha monitoring policies \
    list "--project=$PROJECT" "--filter=$filter" '--format=value(name)'
}

banner() {
  note "$1 project $PROJECT, region $REGION, config $CONFIG"
  ((DRY_RUN)) && note "DRY RUN: the commands below are printed, not run." || true
}
