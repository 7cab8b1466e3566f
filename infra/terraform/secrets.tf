# Secret containers only: values are added out of band (`gcloud secrets versions add`), never in Terraform
# state. Services get the secret *version resource name* in an env var and read it with the Secret Manager
# client, so a rotation is a new version, not a redeploy.

locals {
  secrets = {
    hf-token = {
      description = "Hugging Face token of the pyannote model (gated on the hub)."
      readers     = ["diarization"]
      env         = "SPEAKERLINE_HF_TOKEN_SECRET"
      version     = "latest"
    }
    webhook-signing-key = {
      description = "HMAC key that signs outgoing webhooks."
      readers     = ["notification"]
      env         = "SPEAKERLINE_WEBHOOK_SIGNING_KEY_SECRET"
      # pinned during a rotation (docs/deploy.md, "Rotating the webhook signing key")
      version = var.webhook_signing_key_version
    }
    discord-webhook-url = {
      description = "Discord incoming-webhook URL (the URL is the credential)."
      readers     = ["notification"]
      env         = "SPEAKERLINE_DISCORD_WEBHOOK_URL_SECRET"
      version     = "latest"
    }
    slack-webhook-url = {
      description = "Slack incoming-webhook URL (the URL is the credential)."
      readers     = ["notification"]
      env         = "SPEAKERLINE_SLACK_WEBHOOK_URL_SECRET"
      version     = "latest"
    }
  }

  # service => { ENV_NAME = "projects/.../secrets/.../versions/<version>" }, plus, while a rotation is in
  # progress, the key being rotated out: the notification service signs with both.
  secret_env = {
    for name, _ in local.services : name => merge(
      {
        for key, secret in local.secrets : secret.env => "${google_secret_manager_secret.secret[key].id}/versions/${secret.version}"
        if contains(secret.readers, name)
      },
      contains(local.secrets["webhook-signing-key"].readers, name) && var.webhook_signing_key_previous_version != "" ? {
        SPEAKERLINE_WEBHOOK_SIGNING_KEY_PREVIOUS_SECRET = "${google_secret_manager_secret.secret["webhook-signing-key"].id}/versions/${var.webhook_signing_key_previous_version}"
      } : {},
    )
  }

  secret_readers = merge([
    for key, secret in local.secrets : { for reader in secret.readers : "${key}/${reader}" => { secret = key, service = reader } }
  ]...)
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = "speakerline-${each.key}"
  labels    = { speakerline-secret = each.key }
  annotations = {
    description = each.value.description
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# secretAccessor on the one secret each service needs, never project-wide.
resource "google_secret_manager_secret_iam_member" "reader" {
  for_each = local.secret_readers

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.service[each.value.service].member
}
