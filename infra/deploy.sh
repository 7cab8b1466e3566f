#!/usr/bin/env bash
# `make deploy`: build and push every image with Cloud Build, tagged with the git sha, then `terraform apply`
# (docs/deploy.md walks through the first deployment; this is what each later one runs).
#
#   PROJECT=my-project [REGION=us-central1] [ENGINE=pyannote|embedded|vertex] infra/deploy.sh
#   DRY_RUN=1 PROJECT=my-project infra/deploy.sh      # print the commands, run nothing
#   AUTO_APPROVE=1 ...                                 # apply without asking (CI)
#
# Extra Terraform variables go in infra/terraform/terraform.tfvars (Terraform reads it itself) or TF_VARS
# ("-var alert_email=ops@example.com ..."). The working tree must be committed: the tag names a commit.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROJECT:?set PROJECT to the Google Cloud project id}"
REGION=${REGION:-us-central1}
ENGINE=${ENGINE:-pyannote}
DRY_RUN=${DRY_RUN:-}
TF_VARS=${TF_VARS:-}
TAG=${TAG:-$(git rev-parse --short=12 HEAD)}
REGISTRY="${REGION}-docker.pkg.dev/${PROJECT}/speakerline"
TF=(terraform -chdir=infra/terraform)
# Terraform shows each plan and asks, unless AUTO_APPROVE=1 (CI).
APPROVE=(${AUTO_APPROVE:+-auto-approve})
# shellcheck disable=SC2206 # TF_VARS is a list of arguments on purpose
VARS=(-var "project_id=${PROJECT}" -var "region=${REGION}" -var "diarization_engine=${ENGINE}" ${TF_VARS})

case "$ENGINE" in pyannote | embedded | vertex) ;; *) echo "ENGINE must be pyannote, embedded or vertex" >&2; exit 2 ;; esac
if [ -z "$DRY_RUN" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "the working tree has uncommitted changes: commit them, the images are tagged $TAG" >&2
  exit 2
fi

run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ -z "$DRY_RUN" ]; then "$@"; fi
}

echo "# speakerline deploy: project ${PROJECT}, region ${REGION}, engine ${ENGINE}, images ${REGISTRY}/*:${TAG}${DRY_RUN:+ (dry run: nothing is run)}"
# Cloud Build and Artifact Registry must exist before the first image; Terraform enables every other API.
run gcloud services enable cloudbuild.googleapis.com artifactregistry.googleapis.com --project "$PROJECT"
run "${TF[@]}" init -input=false
# The repository (the images need it) and the secret containers (the services read them at start-up) first,
# then the images, then everything else.
run "${TF[@]}" apply "${APPROVE[@]}" "${VARS[@]}" -target=google_artifact_registry_repository.images \
  -target=google_secret_manager_secret.secret
# The notification service refuses to start without a signing key: stop here until it has a version.
if [ -z "$DRY_RUN" ] && [ -z "$(gcloud secrets versions list speakerline-webhook-signing-key --project "$PROJECT" \
  --filter=state=enabled --limit=1 --format='value(name)')" ]; then
  echo "speakerline-webhook-signing-key has no enabled version: add the secrets (docs/deploy.md, step 4), then rerun" >&2
  exit 3
fi
run gcloud builds submit --project "$PROJECT" --region "$REGION" --config infra/cloudbuild.yaml \
  --substitutions "_REGISTRY=${REGISTRY},_TAG=${TAG}" .
run "${TF[@]}" apply "${APPROVE[@]}" "${VARS[@]}" -var "image_tag=${TAG}"
run "${TF[@]}" output -raw api_url
echo "# next: docs/deploy.md, 'Smoke test'"
