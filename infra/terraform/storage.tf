# Buckets from infra/topology.yaml, named <project_id>-<name>, plus the uploads bucket's OBJECT_FINALIZE
# notification (JSON_API_V1) to the topic the topology names.

locals {
  # Browsers talk to Cloud Storage directly through the API's signed URLs: the studio PUTs the audio to the
  # uploads bucket (with every signed header of POST /v1/uploads' upload_headers: the job's options travel as
  # object metadata) and GETs results (and the original audio) after a 307. CORS lists each header by name
  # (Cloud Storage matches no wildcards).
  bucket_cors = {
    uploads = {
      methods = ["PUT", "GET", "OPTIONS"]
      headers = [
        "Content-Type",
        "x-goog-if-generation-match",
        "x-goog-content-length-range",
        "x-goog-meta-job_id",
        "x-goog-meta-producer",
        "x-goog-meta-filename",
        "x-goog-meta-submitted_by",
        "x-goog-meta-num_speakers",
        "x-goog-meta-min_speakers",
        "x-goog-meta-max_speakers",
        "x-goog-meta-webhook_url",
        "x-goog-meta-correlation_id",
      ]
    }
    results = {
      methods = ["GET", "OPTIONS"]
      headers = ["Content-Type", "Content-Disposition"]
    }
  }
}

resource "google_storage_bucket" "bucket" {
  #checkov:skip=CKV_GCP_62:Objects are transient (deleted after 1 day; results after var.results_retention_days, 30 by default); access is audited with Cloud Audit Logs (Data Access), not legacy usage logs.
  #checkov:skip=CKV_GCP_78:Versioning is off on purpose: lifecycle deletion must really delete audio (privacy), and every object is re-creatable from its job.
  for_each = local.buckets

  name                        = each.value.name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = { speakerline-bucket = each.key }

  versioning {
    enabled = false
  }

  lifecycle_rule {
    condition {
      age = each.value.lifecycle_delete_after_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "cors" {
    for_each = contains(keys(local.bucket_cors), each.key) ? [local.bucket_cors[each.key]] : []

    content {
      origin          = var.studio_origins
      method          = cors.value.methods
      response_header = cors.value.headers
      max_age_seconds = 3600
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]

    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.gcs_agent]
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

# The GCS service agent publishes the notifications; it needs publisher on exactly those topics.
resource "google_pubsub_topic_iam_member" "gcs_agent_publisher" {
  for_each = toset([for note in values(local.bucket_notifications) : note.topic])

  topic  = google_pubsub_topic.topic[each.key].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "bucket" {
  for_each = local.bucket_notifications

  bucket         = google_storage_bucket.bucket[each.key].name
  topic          = google_pubsub_topic.topic[each.value.topic].id
  payload_format = each.value.payload_format
  event_types    = each.value.event_types

  depends_on = [google_pubsub_topic_iam_member.gcs_agent_publisher]
}

# CMEK (optional): the service agents encrypt with the key on behalf of the buckets and topics.
resource "google_kms_crypto_key_iam_member" "gcs_agent" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}
