# Firestore (native mode): jobs/{job_id}, written only by the projector; the API reads it and keeps its own
# api_keys, api_idempotency and api_claims collections.

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
