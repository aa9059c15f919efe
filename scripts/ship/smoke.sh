#!/usr/bin/env bash
# Smoke test of a running ingest endpoint, deployed or local. Posts one text/plain record and one
# JSON record, each carrying a phone number, and expects 202 with the record's tenant and log id
# back. When FIRESTORE_EMULATOR_HOST and a project are set, it then waits for both records to be
# processed into the Firestore emulator and checks the phone number was redacted.
#
#   scripts/ship/smoke.sh <INGEST_URL> <API_KEY>
#
# Environment (all optional):
#   SMOKE_TENANT_ID          tenant to write to (X-Tenant-ID / tenant_id); default: the key's tenant
#   SMOKE_WAIT_SECONDS       how long to wait for the processed documents (default 30)
#   FIRESTORE_EMULATOR_HOST  host:port of the Firestore emulator; enables the document check
#   GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT   the emulator project holding the documents
#
# Needs curl and node. Exits 0 when every check passes, 1 when one fails, 2 on bad usage.
set -euo pipefail

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
[[ ${1-} == -h || ${1-} == --help ]] && usage && exit 0
(($# == 2)) && [[ -n $1 && -n $2 ]] || { usage >&2 && exit 2; }
URL=$1 KEY=$2 TENANT=${SMOKE_TENANT_ID-} WAIT=${SMOKE_WAIT_SECONDS:-30} PHONE=555-123-4567
[[ $WAIT =~ ^[0-9]+$ ]] || { echo "SMOKE_WAIT_SECONDS must be a whole number" >&2 && exit 2; }
for tool in curl node; do
  command -v "$tool" >/dev/null || { echo "smoke: '$tool' is required" >&2 && exit 2; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUN="smoke-$(date +%s)-$RANDOM$RANDOM"
FAILURES=0
pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*" >&2 && FAILURES=$((FAILURES + 1)); }

# json FILE FIELD...: the string at that path of the JSON in FILE ("" when absent or not JSON).
json() {
  node -e 'let v; try { v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")) } catch {}
    for (const k of process.argv.slice(2)) v = v?.[k];
    process.stdout.write(typeof v === "string" ? v : "")' "$@"
}

# accept NAME CONTENT_TYPE LOG_ID [HEADER...]: posts $WORK/NAME.in, expects 202 naming the record.
accept() {
  local name=$1 type=$2 log_id=$3 code header headers=()
  for header in "${@:4}"; do headers+=(-H "$header"); done
  code=$(curl -sS -g -X POST --max-time 60 -H "Authorization: Bearer $KEY" -H "Content-Type: $type" \
    "${headers[@]}" --data-binary "@$WORK/$name.in" -o "$WORK/$name.out" -w '%{http_code}' "$URL") || true
  local tenant got
  tenant=$(json "$WORK/$name.out" tenant_id) got=$(json "$WORK/$name.out" log_id)
  if [[ $code != 202 ]]; then
    fail "$name record: expected HTTP 202, got ${code:-000 (no response)}: $(head -c 500 "$WORK/$name.out" 2>/dev/null)"
  elif [[ $got != "$log_id" ]]; then
    fail "$name record: the 202 body has log_id '$got', expected '$log_id'"
  elif [[ -z $tenant || (-n $TENANT && $tenant != "$TENANT") ]]; then
    fail "$name record: the 202 body has tenant_id '$tenant', expected '${TENANT:-a tenant}'"
  else
    pass "$name record accepted (202): tenant_id=$tenant log_id=$got"
    TENANT=$tenant
  fi
}

echo "smoke: $URL (run $RUN)"
# A text/plain record (the tenant comes from the key unless SMOKE_TENANT_ID names one), then a
# JSON record for the same tenant.
printf 'smoke test %s (text): please call me back at %s.' "$RUN" "$PHONE" >"$WORK/text.in"
accept text "text/plain; charset=utf-8" "$RUN-text" "X-Log-ID: $RUN-text" ${TENANT:+"X-Tenant-ID: $TENANT"}
node -e 'const [tenant_id, log_id, text] = process.argv.slice(1);
  process.stdout.write(JSON.stringify({ tenant_id, log_id, text }))' \
  "${TENANT:-acme}" "$RUN-json" "smoke test $RUN (json): my number is $PHONE" >"$WORK/json.in"
accept json application/json "$RUN-json"

# With the Firestore emulator: wait for both processed documents, check the redaction.
document() { # PATH OUT_FILE -> the HTTP status (000: no response)
  curl -s -g --max-time 10 -H "Authorization: Bearer owner" -o "$2" -w '%{http_code}' \
    "http://$FIRESTORE_EMULATOR_HOST/v1/projects/$PROJECT/databases/(default)/documents/$1" || true
}
PROJECT=${GOOGLE_CLOUD_PROJECT:-${GCLOUD_PROJECT-}}
if [[ -z ${FIRESTORE_EMULATOR_HOST-} ]]; then
  echo "smoke: FIRESTORE_EMULATOR_HOST is not set, so the processed documents are not checked"
elif [[ -z $PROJECT ]]; then
  fail "FIRESTORE_EMULATOR_HOST is set but GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT is not"
elif ((FAILURES == 0)); then
  echo "smoke: waiting up to ${WAIT}s for the documents in the Firestore emulator" \
    "($FIRESTORE_EMULATOR_HOST, project $PROJECT)"
  deadline=$((SECONDS + WAIT))
  for log_id in "$RUN-text" "$RUN-json"; do
    doc="tenants/$TENANT/processed_logs/$log_id"
    until [[ $(document "$doc" "$WORK/doc.json") == 200 ]]; do
      ((SECONDS < deadline)) || break
      sleep 1
    done
    data=$(json "$WORK/doc.json" fields modified_data stringValue)
    if [[ $(document "$doc" "$WORK/doc.json") != 200 ]]; then
      # Failures are kept as failed_logs/<log_id>~<reason>~<hash>; the listing names them.
      document "tenants/$TENANT/failed_logs" "$WORK/failed.json" >/dev/null
      failed=$(grep -o "failed_logs/$log_id~[a-z_]*" "$WORK/failed.json" | head -n 1 || true)
      fail "$doc did not appear within ${WAIT}s${failed:+ (it is in failed_logs: $failed)}"
    elif [[ -z $data ]]; then
      fail "$doc has no modified_data string"
    elif [[ $data == *"$PHONE"* || ${data//[^0-9]/} == *"${PHONE//-/}"* ]]; then
      fail "$doc modified_data still holds the phone number: $data"
    else
      pass "$doc processed, phone number redacted: $data"
    fi
  done
fi
((FAILURES == 0)) || { echo "smoke: $FAILURES check(s) FAILED" >&2 && exit 1; }
echo "smoke: all checks passed"
