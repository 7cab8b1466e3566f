# Cloud Monitoring alerts on the Pub/Sub topology, one policy per subscription, all from infra/topology.yaml
# (local.subscriptions):
#
# - dead letters: any message waiting on `<sub>-dead-letter`. Nothing retries a dead letter by itself: an operator
#   reads it and replays or purges it (`speakerline dlq`, docs/operations.md "Runbook: dead letters").
# - backlog age: the oldest unacknowledged message of `<sub>` older than a threshold, i.e. its service is failing,
#   stuck or cannot keep up. A pull worker holds a message (extending its lease) for the whole engine run, so pull
#   subscriptions get their own, longer threshold.
#
# Alerts notify var.alert_email when set; without it they still open incidents in the console. No log-based or
# custom metric: both conditions use Pub/Sub's built-in subscription metrics.

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "speakerline alerts (${var.alert_email})"
  description  = "Dead letters and Pub/Sub backlog of speakerline."
  type         = "email"
  labels       = { email_address = var.alert_email }

  depends_on = [google_project_service.apis]
}

locals {
  alert_channels = google_monitoring_notification_channel.email[*].id

  # Seconds the oldest unacknowledged message of a subscription may wait before its policy fires.
  backlog_alert_age_s = {
    for name, sub in local.subscriptions : name => sub.push ? var.backlog_alert_age_s : var.pull_backlog_alert_age_s
  }
}

resource "google_monitoring_alert_policy" "dead_letter" {
  for_each = local.subscriptions

  display_name          = "speakerline: dead letters on ${google_pubsub_subscription.dead_letter[each.key].name}"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.alert_channels
  user_labels           = { speakerline-kind = "dead-letter", speakerline-service = each.value.service }

  conditions {
    display_name = "${google_pubsub_subscription.dead_letter[each.key].name} holds messages"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter[each.key].name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "speakerline: dead letters on ${google_pubsub_subscription.dead_letter[each.key].name}"
    mime_type = "text/markdown"
    content   = <<-EOT
      Messages of `${each.key}` (service `${each.value.service}`) are waiting on its dead-letter subscription
      `${google_pubsub_subscription.dead_letter[each.key].name}`: Pub/Sub moved them after ${each.value.max_delivery_attempts} failed
      deliveries (reason `retries_exhausted`), or the runtime refused them at once. Nothing retries them by
      itself and they are kept 7 days.

      Follow the dead-letter runbook (docs/operations.md, "Runbook: dead letters"):

      1. `speakerline dlq list --subscription ${each.key}` (reading never consumes), then
         `speakerline dlq show ${each.key}` for each message in full.
      2. Fix the cause first (logs: `jsonPayload.job_id="job_..."`), or the message only fails again.
      3. `speakerline dlq replay --subscription ${each.key}` with your filters (a dry run), then again with
         `--execute`. `speakerline dlq purge` deletes for good, with a filter.

      The incident closes once the dead-letter subscription is empty again.
    EOT
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "backlog_age" {
  for_each = local.subscriptions

  display_name          = "speakerline: backlog of ${google_pubsub_subscription.service[each.key].name} older than ${local.backlog_alert_age_s[each.key]}s"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.alert_channels
  user_labels           = { speakerline-kind = "backlog", speakerline-service = each.value.service }

  conditions {
    display_name = "oldest unacked message of ${google_pubsub_subscription.service[each.key].name} > ${local.backlog_alert_age_s[each.key]}s"

    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.service[each.key].name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.backlog_alert_age_s[each.key]
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "speakerline: backlog of ${google_pubsub_subscription.service[each.key].name}"
    mime_type = "text/markdown"
    content   = <<-EOT
      The oldest unacknowledged message of `${each.key}` (service `${each.value.service}`, topic
      `${each.value.topic}`) is older than ${local.backlog_alert_age_s[each.key]} s: the service fails and
      Pub/Sub keeps retrying it (backoff up to ${each.value.maximum_backoff_s} s, ${each.value.max_delivery_attempts}
      attempts before the dead-letter subscription), it is stuck, or it cannot keep up (max instances).

      Check the service's Cloud Run logs and instances (`speakerline-${each.value.service}`), and
      `speakerline jobs list --status FAILED`. Messages that run out of attempts land on
      `${google_pubsub_subscription.dead_letter[each.key].name}`: see docs/operations.md, "Runbook: dead letters".
    EOT
  }

  depends_on = [google_project_service.apis]
}
