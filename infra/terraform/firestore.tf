# Firestore (native mode). Every collection has exactly one writer; a reader never writes another's collection:
#
#   collection                 its one writer                        named in                          read by
#   jobs/ (+ events/)          projector                             speakerline.jobs                  api, CLI
#   notification_deliveries/   notification                          notification/ledger.py            notification
#   api_claims/                api (POST /v1/uploads, /v1/jobs)      api/store.py                      api
#   api_idempotency/           api (Idempotency-Key)                 api/store.py                      api
#   api_keys/                  the tooling (speakerline apikey, stack up's studio key)
#                                                                    speakerline.apikeys               api
#   dlq_audit/                 the tooling (speakerline dlq)         speakerline_tools.deadletters     CLI
#
# Firestore IAM has no per-collection roles: the services that write here are local.firestore_users (main.tf).

resource "google_firestore_database" "default" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

# Listing jobs by status, newest first (speakerline CLI / ops dashboards).
resource "google_firestore_index" "jobs_status_updated" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = "jobs" # speakerline.jobs.JOBS_COLLECTION
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "updated_at"
    order      = "DESCENDING"
  }
}

# GET /v1/jobs: one producer's jobs, newest first ...
resource "google_firestore_index" "jobs_producer_created" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = "jobs" # speakerline.jobs.JOBS_COLLECTION
  query_scope = "COLLECTION"

  fields {
    field_path = "request.producer"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  # Indexes created in parallel in one database fail with 409 contention (terraform-provider-google #16599,
  # #16664): one after another.
  depends_on = [google_firestore_index.jobs_status_updated]
}

# ... and filtered by status (?status=).
resource "google_firestore_index" "jobs_producer_status_created" {
  project     = var.project_id
  database    = google_firestore_database.default.name
  collection  = "jobs" # speakerline.jobs.JOBS_COLLECTION
  query_scope = "COLLECTION"

  fields {
    field_path = "request.producer"
    order      = "ASCENDING"
  }

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_index.jobs_producer_created]
}

# notification's delivery ledger (services/notification/ledger.py) deletes itself: a TTL on expire_at, set to
# outlive the dead-letter retention (a replay within it is still deduplicated). No index on a field never queried.
resource "google_firestore_field" "notification_deliveries_ttl" {
  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "notification_deliveries"
  field      = "expire_at"

  ttl_config {}
  index_config {}
}
