output "artifact_registry" {
  description = "Docker repository to push speakerline-<service>:<tag> images to."
  value       = local.artifact_repo
}

output "images" {
  description = "Image each topology service runs (the API included)."
  value       = local.image
}

output "service_accounts" {
  description = "Service account email per topology service (the API included)."
  value       = { for name, sa in google_service_account.service : name => sa.email }
}

output "pubsub_push_service_account" {
  description = "Identity of the push subscriptions' OIDC tokens."
  value       = google_service_account.pubsub_push.email
}

output "push_service_urls" {
  description = "Internal URLs of the push services (reachable by Pub/Sub push only)."
  value       = { for name, svc in google_cloud_run_v2_service.push : name => svc.uri }
}

output "api_url" {
  description = "Public URL of the HTTP API (https://.../v1/...); producers call it, and it is the usual api_id_token_audience."
  value       = google_cloud_run_v2_service.http["api"].uri
}

output "studio_url" {
  description = "The studio, served by the API at /."
  value       = "${google_cloud_run_v2_service.http["api"].uri}/"
}

output "worker_services" {
  description = "GPU pull-worker Cloud Run services."
  value       = { for name, svc in google_cloud_run_v2_service.worker : name => svc.name }
}

output "buckets" {
  description = "Bucket name per topology bucket key."
  value       = { for key, bucket in google_storage_bucket.bucket : key => bucket.name }
}

output "topics" {
  description = "Topic ids."
  value       = { for name, topic in google_pubsub_topic.topic : name => topic.id }
}

output "subscriptions" {
  description = "Service subscription ids."
  value       = { for name, sub in google_pubsub_subscription.service : name => sub.id }
}

output "dead_letter_subscriptions" {
  description = "Dead-letter subscription ids (inspect and replay from these)."
  value       = { for name, sub in google_pubsub_subscription.dead_letter : name => sub.id }
}

output "secrets" {
  description = "Secret ids; add values with `gcloud secrets versions add <id> --data-file=-`."
  value       = { for key, secret in google_secret_manager_secret.secret : key => secret.id }
}

output "firestore_database" {
  description = "Firestore database name."
  value       = google_firestore_database.default.name
}
