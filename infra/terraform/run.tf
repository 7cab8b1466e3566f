# Artifact Registry and Cloud Run.
#
# CPU services (ingest, postprocess, notification, projector): Cloud Run services running the functions-framework
# CloudEvent target behind Pub/Sub push subscriptions; ingress internal, no unauthenticated access, only the push
# identity may invoke them.
#
# GPU services (diarization): a Cloud Run service with one NVIDIA L4, running the pull worker with
# instance-based billing (CPU always allocated, so it pulls between requests it never gets), internal ingress and
# no invoker bindings at all. See README.md ("Why a GPU Cloud Run service and not a MIG").
#
# HTTP services (topology `entrypoint: http`, i.e. the API, speakerline-api): the public front door of producers
# and the studio, running `python -m speakerline.worker <name>` (its app under uvicorn, on $PORT). It
# authenticates every /v1 call itself (API keys or Google-signed ID tokens), so Cloud Run lets anyone reach it.

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:CMEK for images is optional; images hold no customer data.
  location      = var.region
  repository_id = "speakerline"
  description   = "speakerline service images (speakerline-<service>)."
  format        = "DOCKER"

  docker_config {
    immutable_tags = false # `latest` is allowed for dev; pin image_tag to a git sha in prod
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "push" {
  for_each = local.push_services

  name                = "speakerline-${each.key}"
  location            = var.region
  description         = try(each.value.description, "")
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.service[each.key].email
    timeout                          = "${local.request_timeout_s[each.key]}s"
    max_instance_request_concurrency = lookup(var.service_resources, each.key, var.service_resources["default"]).concurrency

    scaling {
      min_instance_count = 0
      max_instance_count = lookup(var.service_resources, each.key, var.service_resources["default"]).max_instances
    }

    containers {
      image = local.image[each.key]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = lookup(var.service_resources, each.key, var.service_resources["default"]).cpu
          memory = lookup(var.service_resources, each.key, var.service_resources["default"]).memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(
          # The image serves the push HTTP function (serve-push) of the service its SERVICE names: it reads
          # the raw push body, whose deliveryAttempt lets the last attempt publish job.failed before Pub/Sub
          # dead-letters the message.
          local.common_env,
          local.secret_env[each.key],
          lookup(var.service_env, each.key, {}),
        )

        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        tcp_socket {
          port = 8080
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# Only the push identity invokes the push services; no allUsers / allAuthenticatedUsers anywhere.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.push_services

  name     = google_cloud_run_v2_service.push[each.key].name
  location = google_cloud_run_v2_service.push[each.key].location
  role     = "roles/run.invoker"
  member   = google_service_account.pubsub_push.member
}

resource "google_cloud_run_v2_service" "worker" {
  for_each = local.gpu_services

  name                = "speakerline-${each.key}"
  location            = var.region
  description         = try(each.value.description, "")
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.service[each.key].email
    max_instance_request_concurrency = 1
    gpu_zonal_redundancy_disabled    = local.worker_gpu ? !var.diarization_gpu_zonal_redundancy : null

    dynamic "node_selector" {
      for_each = local.worker_gpu ? ["nvidia-l4"] : []

      content {
        accelerator = node_selector.value
      }
    }

    scaling {
      min_instance_count = var.diarization_min_instances
      max_instance_count = max(var.diarization_max_instances, var.diarization_min_instances)
    }

    containers {
      image = local.worker_gpu ? local.image[each.key] : local.cpu_worker_image[each.key]
      # Set here, not left to the image: the CPU image's default command is the push server. pull-worker (in
      # both images) opens a bare TCP health listener on $PORT (Cloud Run services must listen) and execs the
      # pull worker; the container exits, and Cloud Run replaces it, when the worker stops.
      command = ["/usr/local/bin/pull-worker"]
      args    = ["python", "-m", "speakerline.worker", each.key]

      ports {
        container_port = 8080
      }

      resources {
        limits = merge(
          { cpu = local.worker_cpu, memory = local.worker_memory },
          local.worker_gpu ? { "nvidia.com/gpu" = "1" } : {},
        )
        cpu_idle          = false # instance-based billing: a pull worker works outside requests
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(
          local.common_env,
          local.secret_env[each.key],
          {
            PYANNOTE_METRICS_ENABLED = "false"
            # "auto" = pyannote, falling back to the embedded engine when the model cannot be loaded
            SPEAKERLINE_ENGINE                 = local.worker_engine
            SPEAKERLINE_PYANNOTE_MODEL         = var.pyannote_model
            SPEAKERLINE_VERTEX_DISPATCH        = local.vertex_dispatch ? "true" : "false"
            SPEAKERLINE_VERTEX_REGION          = var.region
            SPEAKERLINE_VERTEX_MACHINE_TYPE    = "g2-standard-8"
            SPEAKERLINE_VERTEX_ACCELERATOR     = "NVIDIA_L4"
            SPEAKERLINE_VERTEX_IMAGE           = local.image[each.key]
            SPEAKERLINE_VERTEX_SERVICE_ACCOUNT = google_service_account.service[each.key].email
          },
          lookup(var.service_env, each.key, {}),
        )

        content {
          name  = env.key
          value = env.value
        }
      }

      # Model loading (hub or gs:// mirror) happens before the worker starts pulling; give it minutes.
      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 10
        timeout_seconds       = 5
        failure_threshold     = 60

        tcp_socket {
          port = 8080
        }
      }
    }
  }

  depends_on = [google_project_service.apis, google_secret_manager_secret_iam_member.reader]
}

resource "google_cloud_run_v2_service" "http" {
  for_each = local.http_services

  name                = "speakerline-${each.key}"
  location            = var.region
  description         = try(each.value.description, "")
  ingress             = "INGRESS_TRAFFIC_ALL" # the front door: producers and browsers call it from anywhere
  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.service[each.key].email
    # GET /v1/jobs/{id}/events streams a job for as long as it runs; 3600 s is Cloud Run's maximum, and a
    # client that is cut off resumes with Last-Event-ID.
    timeout                          = "3600s"
    max_instance_request_concurrency = lookup(var.service_resources, each.key, var.service_resources["default"]).concurrency

    scaling {
      min_instance_count = 0
      max_instance_count = lookup(var.service_resources, each.key, var.service_resources["default"]).max_instances
    }

    containers {
      image = local.image[each.key]
      # The one start of every service (speakerline.bootstrap): an http service serves its app on $PORT, which
      # the settings read from the environment (no shell needed). Set here: the image's default is the push server.
      command = ["python", "-m", "speakerline.worker", each.key]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = lookup(var.service_resources, each.key, var.service_resources["default"]).cpu
          memory = lookup(var.service_resources, each.key, var.service_resources["default"]).memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(
          local.common_env,
          {
            SERVICE             = each.key
            SPEAKERLINE_SERVICE = each.key
            # Google-signed ID tokens must name this audience (normally the service URL, known after the first
            # apply: see var.api_id_token_audience).
            SPEAKERLINE_API_ID_TOKEN_AUDIENCE = var.api_id_token_audience
          },
          local.secret_env[each.key],
          lookup(var.service_env, each.key, {}),
        )

        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/health"
          port = 8080
        }
      }

      liveness_probe {
        period_seconds    = 30
        failure_threshold = 3

        http_get {
          path = "/health"
          port = 8080
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# Public on purpose: the API authenticates every /v1 call itself (API keys or Google-signed ID tokens) and
# serves the studio (/) and /health to anyone. This is the only allUsers binding in the module.
resource "google_cloud_run_v2_service_iam_member" "http_public" {
  #checkov:skip=CKV_GCP_102:The API is the public front door; every /v1 call is authenticated by the application (API keys or Google ID tokens), and / (studio) and /health are public by design.
  for_each = local.http_services

  name     = google_cloud_run_v2_service.http[each.key].name
  location = google_cloud_run_v2_service.http[each.key].location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
