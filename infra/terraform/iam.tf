# Identities and least-privilege grants. Every grant is on one resource (topic, subscription, bucket, secret,
# Cloud Run service, service account) except the two roles that only exist project-wide: roles/datastore.user
# (local.firestore_users) and roles/aiplatform.user (diarization, only with Vertex dispatch).

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # (service, topic) pairs a service publishes to: its output topics plus the dead-letter topics of its own
  # subscriptions (the runtime forwards messages that must never be processed there at once).
  publisher_grants = merge(
    merge([
      for name, _ in local.services : {
        for topic in lookup(local.service_publishes, name, []) : "${name}/${topic}" => {
          service = name
          topic   = google_pubsub_topic.topic[topic].id
        }
      }
    ]...),
    {
      for sub_name, sub in local.subscriptions : "${sub.service}/${sub.dead_letter_topic}" => {
        service = sub.service
        topic   = google_pubsub_topic.dead_letter[sub_name].id
      }
    },
  )

  bucket_grants = merge([
    for name, access in local.bucket_access : {
      for bucket_key, role in access : "${name}/${bucket_key}" => {
        service = name
        bucket  = google_storage_bucket.bucket[bucket_key].name
        role    = role
      }
    } if contains(keys(local.services), name)
  ]...)

  # Pull subscriptions: the worker's identity subscribes; push subscriptions need no subscriber role on the
  # receiving side (Pub/Sub itself delivers, authenticated as the push identity).
  pull_subscriptions = { for name, sub in local.subscriptions : name => sub if !sub.push }
}

# --- one service account per service ----------------------------------------------------------------------

resource "google_service_account" "service" {
  for_each = local.services

  account_id   = "speakerline-${each.key}"
  display_name = "speakerline ${each.key}"
  description  = try(each.value.description, "")

  depends_on = [google_project_service.apis]
}

# Identity Pub/Sub uses to sign the OIDC tokens of push requests; it may invoke the push services and nothing
# else.
resource "google_service_account" "pubsub_push" {
  account_id   = "speakerline-pubsub-push"
  display_name = "speakerline Pub/Sub push"
  description  = "OIDC identity of the push subscriptions; run.invoker on the push services only."

  depends_on = [google_project_service.apis]
}

# --- Pub/Sub -----------------------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "service_publisher" {
  for_each = local.publisher_grants

  topic  = each.value.topic
  role   = "roles/pubsub.publisher"
  member = google_service_account.service[each.value.service].member
}

resource "google_pubsub_subscription_iam_member" "service_subscriber" {
  for_each = local.pull_subscriptions

  subscription = google_pubsub_subscription.service[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.service[each.value.service].member
}

# Dead-lettering: the Pub/Sub service agent must publish to the dead-letter topic and subscribe (ack) on the
# source subscription, otherwise messages are never forwarded.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  for_each = local.subscriptions

  topic  = google_pubsub_topic.dead_letter[each.key].id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscriber" {
  for_each = local.subscriptions

  subscription = google_pubsub_subscription.service[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Pub/Sub mints the push OIDC tokens as the push identity (required in projects created before 2021-04-08,
# harmless otherwise): token creator on that one service account, not project-wide.
resource "google_service_account_iam_member" "pubsub_agent_push_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent

  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key_iam_member" "pubsub_agent" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent

  depends_on = [google_project_service.apis]
}

# --- Cloud Storage -----------------------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "service" {
  for_each = local.bucket_grants

  bucket = each.value.bucket
  role   = each.value.role
  member = google_service_account.service[each.value.service].member
}

resource "google_storage_bucket_iam_member" "model_mirror" {
  for_each = var.model_mirror_bucket == null ? {} : local.gpu_services

  bucket = var.model_mirror_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.service[each.key].member
}

# --- Firestore ---------------------------------------------------------------------------------------------

# The projector is the only writer of job documents; notification keeps its delivery ledger
# (notification_deliveries), the API its keys, idempotency records and claims (local.firestore_users). Firestore
# IAM has no per-collection roles; datastore.user is the narrowest role that reads and writes documents.
resource "google_project_iam_member" "service_datastore" {
  for_each = toset(local.firestore_users)

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.service[each.key].member
}

# --- Telemetry -------------------------------------------------------------------------------------------

# Every service and the API write spans (Cloud Trace) and metrics (Cloud Monitoring); the agent/writer roles
# only add data, they read nothing.
resource "google_project_iam_member" "telemetry" {
  for_each = {
    for pair in setproduct(keys(local.services), ["roles/cloudtrace.agent", "roles/monitoring.metricWriter"]) :
    "${pair[0]}/${pair[1]}" => { service = pair[0], role = pair[1] }
  }

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.service[each.value.service].member
}

# --- Vertex AI dispatch (optional) -------------------------------------------------------------------------

resource "google_project_iam_member" "diarization_vertex" {
  for_each = local.vertex_dispatch ? local.gpu_services : {}

  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = google_service_account.service[each.key].member
}

# The CustomJob runs as the worker's own identity (same grants, same secret): creating a job that runs as a
# service account needs actAs on it.
resource "google_service_account_iam_member" "diarization_vertex_act_as_self" {
  for_each = local.vertex_dispatch ? local.gpu_services : {}

  service_account_id = google_service_account.service[each.key].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.service[each.key].member
}

# --- Signed URLs (the API) ---------------------------------------------------------------------------------

# Work files and results: read (the signed GET URLs of /result and /audio act with this identity's permissions)
# and delete (DELETE /v1/jobs/{id}); no predefined role reads and deletes without also writing.
resource "google_project_iam_custom_role" "api_object_reader_deleter" {
  project     = var.project_id
  role_id     = "speakerlineApiObjectReaderDeleter"
  title       = "speakerline api object reader and deleter"
  description = "Get, list and delete objects; granted on the work and results buckets only."
  permissions = ["storage.objects.get", "storage.objects.list", "storage.objects.delete"]

  depends_on = [google_project_service.apis]
}

# V4 signed URLs without a key file: a signer signs with IAM signBlob as itself, which needs token creator on its
# own service account (not project-wide).
resource "google_service_account_iam_member" "sign_as_self" {
  for_each = toset(local.url_signers)

  service_account_id = google_service_account.service[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.service[each.key].member
}
