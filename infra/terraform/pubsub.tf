# Topics, dead-letter topics and subscriptions, all from infra/topology.yaml.
#
# Every subscription `<sub>` gets a dead-letter topic `<sub>-dead-letter` and a pull subscription of the same
# name on it, from which ops inspect and replay. Subscriptions never expire (the default TTL deletes a
# subscription after 31 idle days, which would silently drop a quiet dead-letter queue).

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:CMEK is optional (var.kms_key_name); messages are transient and Google-managed encryption is the default.
  for_each = local.topology.topics

  name         = each.key
  kms_key_name = var.kms_key_name
  labels       = { speakerline-kind = "topic" }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:CMEK is optional (var.kms_key_name); see google_pubsub_topic.topic.
  for_each = local.subscriptions

  name         = each.value.dead_letter_topic
  kms_key_name = var.kms_key_name
  labels       = { speakerline-kind = "dead-letter" }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.pubsub_agent]
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.subscriptions

  name                       = each.value.dead_letter_topic
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s" # the maximum: ops need time to inspect and replay
  labels                     = { speakerline-kind = "dead-letter", speakerline-source = each.key }

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "service" {
  for_each = local.subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_s
  message_retention_duration = "${each.value.message_retention_s}s"
  labels                     = { speakerline-kind = "service", speakerline-service = each.value.service }
  # Message ordering is never enabled (see topology.yaml); consumers are order-tolerant.
  enable_message_ordering = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${each.value.minimum_backoff_s}s"
    maximum_backoff = "${each.value.maximum_backoff_s}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  # CPU services: push to their Cloud Run service with an OIDC token of the push identity (run.invoker on that
  # service only). GPU services have no push_config: the worker streams-pulls.
  # The path names the topic: functions-framework turns a wrapped push into a CloudEvent whose `source` is
  # parsed from `projects/*/topics/*` in the request path (it drops the body's `subscription`), and the runtime
  # finds the subscription from that topic and its service.
  dynamic "push_config" {
    for_each = each.value.push ? [google_cloud_run_v2_service.push[each.value.service].uri] : []

    content {
      push_endpoint = "${push_config.value}/projects/${var.project_id}/topics/${each.value.topic}"

      oidc_token {
        service_account_email = google_service_account.pubsub_push.email
        audience              = push_config.value
      }
    }
  }

  # Without these grants Pub/Sub cannot dead-letter (the console shows the same warning).
  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.push_invoker,
  ]
}
