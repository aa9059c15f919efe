#!/usr/bin/env bash
# Removes what scripts/deploy.sh created: both functions (with the Eventarc trigger and its
# subscription), the topics and the dead-letter subscription, the project-level IAM grants and the
# service accounts. Firestore data is kept unless --delete-data is given. Safe to re-run: whatever
# is already gone is skipped. Settings: deploy/config.env. Documentation: README.md, section Release.
set -euo pipefail

# shellcheck source=scripts/lib/gcloud-plan.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/gcloud-plan.sh"

usage() {
  cat <<'EOF'
Usage: scripts/teardown.sh --project ID [--region R] [--config FILE] [--dry-run] [--delete-data]
       npm run teardown -- --project ID [...]

Deletes the functions, Pub/Sub topics and subscriptions, IAM grants and service accounts that
scripts/deploy.sh created. Keeps the Firestore database, its documents, rules and index settings,
and leaves the enabled APIs on.

  --project ID     Google Cloud project to clean up (required)
  --region R       Region the functions were deployed to (default: REGION of the config)
  --config FILE    Settings file used for the deploy (default: deploy/config.env)
  --dry-run        Print every command in order, the checks included, and run none of them
  --delete-data    Also delete every document of the product's collections (irreversible)
  -h, --help       Show this help
EOF
}

DELETE_DATA=0
while (($#)); do
  case $1 in
    --delete-data) DELETE_DATA=1 ;;
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

# Dry run: show the deletes, as if everything deploy.sh creates were there.
PLAN_DRY_ASSUME_EXISTS=1
plan_init
PROJECT=$PLAN_PROJECT
REGION=$PLAN_REGION

step_functions() {
  plan_note "Functions (deleting one also deletes its Eventarc trigger and the trigger's subscription)"
  local name
  for name in "$PLAN_PROCESS_FUNCTION" "$PLAN_INGEST_FUNCTION"; do
    if plan_exists "delete only what is there" \
      gcloud functions describe "$name" --v2 "--region=$REGION" "--project=$PROJECT" \
      '--format=value(name)'; then
      plan_run gcloud functions delete "$name" "--region=$REGION" "--project=$PROJECT" --quiet
    else
      plan_note "  function $name is already gone"
    fi
  done
}

step_pubsub() {
  plan_note "Pub/Sub (their IAM grants go with them; dead letters still held are deleted too)"
  local hold topic
  hold=$(cfg DEAD_LETTER_SUBSCRIPTION)
  if plan_exists "delete only what is there" \
    gcloud pubsub subscriptions describe "$hold" "--project=$PROJECT" '--format=value(name)'; then
    plan_run gcloud pubsub subscriptions delete "$hold" "--project=$PROJECT" --quiet
  else
    plan_note "  subscription $hold is already gone"
  fi
  for topic in "${PLAN_TOPICS[@]}"; do
    if plan_exists "delete only what is there" \
      gcloud pubsub topics describe "$topic" "--project=$PROJECT" '--format=value(name)'; then
      plan_run gcloud pubsub topics delete "$topic" "--project=$PROJECT" --quiet
    else
      plan_note "  topic $topic is already gone"
    fi
  done
}

step_iam() {
  plan_note "Project-level IAM grants of the deployment's service accounts"
  local current role member
  plan_current_project_bindings current
  while IFS=$'\t' read -r role member; do
    if grep -qxF "$role"$'\t'"$member" <<<"$current"; then
      plan_run gcloud projects remove-iam-policy-binding "$PROJECT" "--member=$member" \
        "--role=$role" --all --format=none --quiet
    fi
  done < <(plan_project_bindings)
}

step_service_accounts() {
  plan_note "Service accounts (grants on them go with them)"
  local entry email
  for entry in "${PLAN_SERVICE_ACCOUNTS[@]}"; do
    email=${entry%%|*}
    if plan_exists "delete only what is there" \
      gcloud iam service-accounts describe "$email" "--project=$PROJECT" '--format=value(email)'; then
      plan_run gcloud iam service-accounts delete "$email" "--project=$PROJECT" --quiet
    else
      plan_note "  $email is already gone"
    fi
  done
}

step_data() {
  if ((DELETE_DATA)); then
    plan_note "Firestore data (--delete-data): every document of $(cfg FIRESTORE_DATA_COLLECTIONS)"
    plan_run gcloud firestore bulk-delete "--collection-ids=$(cfg FIRESTORE_DATA_COLLECTIONS)" \
      '--database=(default)' "--project=$PROJECT" --quiet
  else
    plan_note "Firestore data left in place: the (default) database, its documents, rules and index"
    plan_note "settings are untouched. Re-run with --delete-data to delete the documents of"
    plan_note "$(cfg FIRESTORE_DATA_COLLECTIONS)."
  fi
  plan_note "Also left in place: the enabled APIs, and the build images and source archives Cloud"
  plan_note "Functions keeps (Artifact Registry repository gcf-artifacts, gcf-v2-* buckets)."
}

((PLAN_DRY_RUN)) || plan_require_tools gcloud
plan_banner "Tearing down"
step_functions
step_pubsub
step_iam
step_service_accounts
step_data
