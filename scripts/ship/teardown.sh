#!/usr/bin/env bash
# Removes what deploy.sh created, keeping the Firestore database with its rules, index settings,
# TTL policies and (unless --delete-data) documents. Safe to re-run: what is gone is skipped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/gcloud-plan.sh"

usage() {
  cat <<'EOF'
Usage: npm run teardown -- --project ID [--region R] [--config FILE] [--dry-run] [--delete-data]
  --region R, --config FILE   default: REGION of the config, deploy/config.env
  --dry-run                   print every command in order, the checks included; run none
  --delete-data               also delete every document of the product's collections (irreversible)
EOF
}

DELETE_DATA=0
while (($#)); do
  case $1 in
    --delete-data) DELETE_DATA=1 ;;
    -h | --help) usage && exit 0 ;;
    *) common_flag "$@" || usage_error "unknown argument: $1" && shift "$SHIFT" && continue ;;
  esac
  shift
done
DRY_EXISTS=1 # a dry run shows the deletes, as if everything deploy.sh creates were there
init_plan
((DRY_RUN)) || command -v gcloud >/dev/null || die "'gcloud' is not installed or not on PATH"

banner "Tearing down"
note "Alert policies and log-based metrics"
alert_policies policies "" "<POLICY>" "delete the deployment's alert policies"
for policy in $policies; do
  change alpha monitoring policies delete "$policy"
done
for metric in "${LOG_METRICS[@]}"; do
  if_found yes "metric $metric" logging metrics describe "$metric" -- logging metrics delete "$metric"
done

note "Functions (deleting one also deletes its Eventarc trigger and the trigger's subscription)"
for name in process ingest; do
  if_found yes "function $name" functions describe "$name" --v2 "--region=$REGION" -- \
    functions delete "$name" "--region=$REGION"
done

note "Pub/Sub (their IAM grants go with them; dead letters still held are deleted too)"
hold=$(cfg DEAD_LETTER_SUBSCRIPTION)
if_found yes "subscription $hold" pubsub subscriptions describe "$hold" -- pubsub subscriptions delete "$hold"
for topic in "${TOPICS[@]}"; do
  if_found yes "topic $topic" pubsub topics describe "$topic" -- pubsub topics delete "$topic"
done

note "Project-level IAM grants of the deployment's service accounts"
project_policy current
while IFS=$'\t' read -r role member; do
  has_line "$role"$'\t'"$member" "$current" || continue
  run gcloud projects remove-iam-policy-binding "$PROJECT" "--member=$member" "--role=$role" --all \
    --format=none --quiet
done < <(project_bindings)

note "Service accounts (grants on them go with them)"
for entry in "${SERVICE_ACCOUNTS[@]}"; do
  if_found yes "${entry%%|*}" iam service-accounts describe "${entry%%|*}" -- \
    iam service-accounts delete "${entry%%|*}"
done

if ((DELETE_DATA)); then
  note "Firestore data (--delete-data): every document of $(cfg FIRESTORE_DATA_COLLECTIONS)"
  change firestore bulk-delete "--collection-ids=$(cfg FIRESTORE_DATA_COLLECTIONS)" '--database=(default)'
else
  note "Firestore data left in place: the (default) database, its documents, rules, index settings"
  note "and TTL policies are untouched. Re-run with --delete-data to delete the documents of"
  note "$(cfg FIRESTORE_DATA_COLLECTIONS)."
fi
note "Also left in place: the enabled APIs, and the build images and source archives Cloud"
note "Functions keeps (Artifact Registry repository gcf-artifacts, gcf-v2-* buckets)."
