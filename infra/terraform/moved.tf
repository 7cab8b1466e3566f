# The API became a topology service (infra/topology.yaml, `entrypoint: http`): its resources moved from their own
# names to the per-service for_each instances, with the same real names, so an existing deployment keeps them.

moved {
  from = google_service_account.api
  to   = google_service_account.service["api"]
}

moved {
  from = google_cloud_run_v2_service.api
  to   = google_cloud_run_v2_service.http["api"]
}

moved {
  from = google_cloud_run_v2_service_iam_member.api_public
  to   = google_cloud_run_v2_service_iam_member.http_public["api"]
}

moved {
  from = google_project_iam_member.api_datastore
  to   = google_project_iam_member.service_datastore["api"]
}

moved {
  from = google_service_account_iam_member.api_sign_as_self
  to   = google_service_account_iam_member.sign_as_self["api"]
}

moved {
  from = google_pubsub_topic_iam_member.api_publisher["audio-uploaded"]
  to   = google_pubsub_topic_iam_member.service_publisher["api/audio-uploaded"]
}

moved {
  from = google_pubsub_topic_iam_member.api_publisher["job-outcomes"]
  to   = google_pubsub_topic_iam_member.service_publisher["api/job-outcomes"]
}

moved {
  from = google_storage_bucket_iam_member.api["uploads"]
  to   = google_storage_bucket_iam_member.service["api/uploads"]
}

moved {
  from = google_storage_bucket_iam_member.api["work"]
  to   = google_storage_bucket_iam_member.service["api/work"]
}

moved {
  from = google_storage_bucket_iam_member.api["results"]
  to   = google_storage_bucket_iam_member.service["api/results"]
}
