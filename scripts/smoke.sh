#!/usr/bin/env bash
# Smoke test of a running ingest endpoint, deployed or local. Posts one text/plain record and one
# JSON record, each carrying a phone number, and expects 202 with the record's tenant and log id
# back. When FIRESTORE_EMULATOR_HOST and a project are set, it then waits for both records to be
# processed into the Firestore emulator and checks the phone number was redacted.
#
#   scripts/smoke.sh <INGEST_URL> <API_KEY>
#
# Environment (all optional):
#   SMOKE_TENANT_ID          tenant to write to (X-Tenant-ID / tenant_id); default: the key's tenant
#   SMOKE_WAIT_SECONDS       how long to wait for the processed documents (default 30)
#   FIRESTORE_EMULATOR_HOST  host:port of the Firestore emulator; enables the document check
#   GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT   the emulator project holding the documents
#
# Needs curl and node. Exits 0 when every check passes, 1 when one fails, 2 on bad usage.
set -euo pipefail

usage() {
  sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

if [[ ${1-} == -h || ${1-} == --help ]]; then
  usage
  exit 0
fi
if (($# != 2)) || [[ -z $1 || -z $2 ]]; then
  usage >&2
  exit 2
fi

INGEST_URL=$1
API_KEY=$2
TENANT_HINT=${SMOKE_TENANT_ID-}
WAIT_SECONDS=${SMOKE_WAIT_SECONDS:-30}
PHONE=555-123-4567
PHONE_DIGITS=5551234567

[[ $WAIT_SECONDS =~ ^[0-9]+$ ]] || {
  echo "SMOKE_WAIT_SECONDS must be a whole number" >&2
  exit 2
}
for tool in curl node; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "smoke: '$tool' is required" >&2
    exit 2
  }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

RUN_ID="smoke-$(date +%s)-$(node -p 'require("crypto").randomBytes(4).toString("hex")')"
FAILURES=0

pass() { printf 'ok    %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*" >&2
  FAILURES=$((FAILURES + 1))
}

# Prints FIELD of the JSON object in FILE ("" when the file is not JSON or lacks the field).
json_field() {
  node -e '
    const fs = require("fs");
    try {
      const value = JSON.parse(fs.readFileSync(process.argv[1], "utf8"))[process.argv[2]];
      process.stdout.write(typeof value === "string" ? value : "");
    } catch {
      /* not JSON: print nothing */
    }' "$1" "$2"
}

# post NAME CONTENT_TYPE BODY_FILE [HEADER...] -> prints the HTTP status; body in $WORK/NAME.out
post() {
  local name=$1 content_type=$2 body=$3
  shift 3
  local -a headers=(-H "Authorization: Bearer $API_KEY" -H "Content-Type: $content_type")
  local header
  for header in "$@"; do headers+=(-H "$header"); done
  local code
  code=$(curl -sS -g -X POST --max-time 60 "${headers[@]}" --data-binary "@$body" \
    -o "$WORK/$name.out" -w '%{http_code}' "$INGEST_URL") || true
  [[ $code == 000 || -z $code ]] && code="000 (no response)"
  printf '%s' "$code"
}

# check_accepted NAME STATUS LOG_ID [TENANT]; sets ACCEPTED_TENANT to the tenant the 202 names.
check_accepted() {
  local name=$1 status=$2 log_id=$3 tenant=${4-} got_log
  ACCEPTED_TENANT=$(json_field "$WORK/$name.out" tenant_id)
  got_log=$(json_field "$WORK/$name.out" log_id)
  if [[ $status != 202 ]]; then
    fail "$name record: expected HTTP 202, got $status: $(head -c 500 "$WORK/$name.out" 2>/dev/null)"
  elif [[ $got_log != "$log_id" ]]; then
    fail "$name record: the 202 body has log_id '$got_log', expected '$log_id'"
  elif [[ -z $ACCEPTED_TENANT || (-n $tenant && $ACCEPTED_TENANT != "$tenant") ]]; then
    fail "$name record: the 202 body has tenant_id '$ACCEPTED_TENANT', expected '${tenant:-a tenant}'"
  else
    pass "$name record accepted (202): tenant_id=$ACCEPTED_TENANT log_id=$got_log"
  fi
}

echo "smoke: $INGEST_URL (run $RUN_ID)"

# 1. A text/plain record: the tenant comes from the key unless SMOKE_TENANT_ID names one.
TEXT_LOG_ID="$RUN_ID-text"
printf 'smoke test %s (text): please call me back at %s.' "$RUN_ID" "$PHONE" >"$WORK/text.in"
text_headers=("X-Log-ID: $TEXT_LOG_ID")
[[ -n $TENANT_HINT ]] && text_headers+=("X-Tenant-ID: $TENANT_HINT")
status=$(post text "text/plain; charset=utf-8" "$WORK/text.in" "${text_headers[@]}")
check_accepted text "$status" "$TEXT_LOG_ID" "$TENANT_HINT"
TENANT=${ACCEPTED_TENANT:-$TENANT_HINT}

# 2. A JSON record for the same tenant.
JSON_LOG_ID="$RUN_ID-json"
node -e '
  const [tenant, logId, text] = process.argv.slice(1);
  process.stdout.write(JSON.stringify({ tenant_id: tenant, log_id: logId, text }));
' "${TENANT:-acme}" "$JSON_LOG_ID" "smoke test $RUN_ID (json): my number is $PHONE" >"$WORK/json.in"
status=$(post json application/json "$WORK/json.in")
check_accepted json "$status" "$JSON_LOG_ID" "${TENANT:-acme}"

# 3. With the Firestore emulator: wait for both processed documents, check the redaction.
emulator_document() { # PATH OUT_FILE -> prints the HTTP status (000: no response)
  local code
  code=$(curl -s -g --max-time 10 -H "Authorization: Bearer owner" -o "$2" -w '%{http_code}' \
    "http://$FIRESTORE_EMULATOR_HOST/v1/projects/$PROJECT/databases/(default)/documents/$1") || true
  printf '%s' "${code:-000}"
}

modified_data() { # FILE -> the processed document's modified_data string
  node -e '
    const doc = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const field = doc.fields && doc.fields.modified_data;
    process.stdout.write(field && typeof field.stringValue === "string" ? field.stringValue : "");
  ' "$1"
}

if [[ -n ${FIRESTORE_EMULATOR_HOST-} && $FAILURES -eq 0 ]]; then
  PROJECT=${GOOGLE_CLOUD_PROJECT:-${GCLOUD_PROJECT-}}
  if [[ -z $PROJECT ]]; then
    fail "FIRESTORE_EMULATOR_HOST is set but GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT is not"
  else
    echo "smoke: waiting up to ${WAIT_SECONDS}s for the documents in the Firestore emulator" \
      "($FIRESTORE_EMULATOR_HOST, project $PROJECT)"
    deadline=$((SECONDS + WAIT_SECONDS))
    for log_id in "$TEXT_LOG_ID" "$JSON_LOG_ID"; do
      doc="tenants/$TENANT/processed_logs/$log_id"
      while :; do
        status=$(emulator_document "$doc" "$WORK/doc.json")
        [[ $status == 200 || $SECONDS -ge $deadline ]] && break
        sleep 1
      done
      if [[ $status != 200 ]]; then
        hint=""
        # Failures are kept as failed_logs/<log_id>~<reason>~<hash>; the listing names them.
        if [[ $(emulator_document "tenants/$TENANT/failed_logs" "$WORK/failed.json") == 200 ]] &&
          grep -q "failed_logs/$log_id~" "$WORK/failed.json"; then
          hint=" (it is in failed_logs: $(grep -o "failed_logs/$log_id~[a-z_]*" "$WORK/failed.json" | head -n 1))"
        fi
        fail "$doc did not appear within ${WAIT_SECONDS}s (last HTTP status $status)$hint"
        continue
      fi
      data=$(modified_data "$WORK/doc.json")
      if [[ -z $data ]]; then
        fail "$doc has no modified_data string"
      elif [[ $data == *"$PHONE"* || ${data//[^0-9]/} == *"$PHONE_DIGITS"* ]]; then
        fail "$doc modified_data still holds the phone number: $data"
      else
        pass "$doc processed, phone number redacted: $data"
      fi
    done
  fi
elif [[ -z ${FIRESTORE_EMULATOR_HOST-} ]]; then
  echo "smoke: FIRESTORE_EMULATOR_HOST is not set, so the processed documents are not checked"
fi

if ((FAILURES)); then
  echo "smoke: $FAILURES check(s) FAILED" >&2
  exit 1
fi
echo "smoke: all checks passed"
