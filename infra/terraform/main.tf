# Everything that has a name in the messaging and storage topology comes from infra/topology.yaml, the same file
# `speakerline stack up` applies to the local emulators: nothing below hand-copies a topic, subscription, bucket
# or service name. The `profiles` section of the file (faster local retries) is ignored here.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  topology = yamldecode(file("${path.module}/../topology.yaml"))

  sub_defaults = local.topology.defaults.subscription

  services     = local.topology.services
  gpu_services = { for name, svc in local.services : name => svc if try(svc.gpu, false) }
  # Every CPU service is a Cloud Run service behind push subscriptions; GPU services pull (no ingress).
  push_services = { for name, svc in local.services : name => svc if !try(svc.gpu, false) }

  # var.diarization_engine: only "pyannote" puts a GPU on the worker; "embedded" runs the CPU engine there and
  # "vertex" only submits CustomJobs (which get the GPU) and waits for them.
  worker_gpu      = var.diarization_engine == "pyannote"
  vertex_dispatch = var.diarization_engine == "vertex"
  worker_engine   = { pyannote = "auto", embedded = "embedded", vertex = "vertex" }[var.diarization_engine]
  worker_cpu      = coalesce(var.diarization_cpu, local.worker_gpu ? "8" : "1")
  worker_memory   = coalesce(var.diarization_memory, local.worker_gpu ? "32Gi" : "4Gi")

  # Subscriptions with the defaults applied (per-subscription values win), the same rule as
  # speakerline.topology.parse without a profile.
  subscriptions = {
    for name, sub in local.topology.subscriptions : name => {
      topic                 = sub.topic
      service               = sub.service
      ack_deadline_s        = try(sub.ack_deadline_s, local.sub_defaults.ack_deadline_s)
      max_delivery_attempts = try(sub.max_delivery_attempts, local.sub_defaults.max_delivery_attempts)
      minimum_backoff_s     = try(sub.retry.minimum_backoff_s, local.sub_defaults.retry.minimum_backoff_s)
      maximum_backoff_s     = try(sub.retry.maximum_backoff_s, local.sub_defaults.retry.maximum_backoff_s)
      message_retention_s   = try(sub.message_retention_s, local.sub_defaults.message_retention_s)
      dead_letter_topic     = "${name}-dead-letter"
      push                  = contains(keys(local.push_services), sub.service)
    }
  }

  buckets = {
    for key, bucket in local.topology.buckets : key => {
      name = "${var.project_id}-${bucket.name}"
      # Results are what producers download: their retention is a deployment choice (var.results_retention_days);
      # uploads and work files are transient and keep the topology's value.
      lifecycle_delete_after_days = key == "results" ? var.results_retention_days : bucket.lifecycle_delete_after_days
      notification                = try(bucket.notification, null)
    }
  }
  bucket_notifications = { for key, bucket in local.buckets : key => bucket.notification if bucket.notification != null }

  # Which topics each service publishes its output events to (the topology maps event types to topics; which
  # service emits which type is code). Dead-letter topics of a service's own subscriptions are added in iam.tf:
  # the runtime forwards poison messages there itself.
  service_publishes = {
    ingest       = ["audio-uploaded", "audio-ingested", "job-outcomes"] # re-publishes bucket uploads; rejected/failed
    diarization  = ["diarization", "job-outcomes"]                      # started/completed; failed when exhausted
    postprocess  = ["job-outcomes"]                                     # completed; failed when exhausted
    notification = ["notifications"]                                    # delivered/failed reports
    projector    = []                                                   # only writes Firestore
  }

  # Bucket access per service: objectViewer = read; objectUser = read + create + overwrite (a redelivered message
  # rewrites the same deterministic object, which objectCreator alone refuses).
  bucket_access = {
    ingest      = { uploads = "roles/storage.objectViewer", work = "roles/storage.objectUser" }
    diarization = { work = "roles/storage.objectUser" }
    postprocess = { work = "roles/storage.objectViewer", results = "roles/storage.objectUser" }
  }

  # The HTTP API (services/api, `api.app:create_app` under uvicorn) is not a topology service: it subscribes to
  # nothing, so it has its own Cloud Run service and identity (run.tf, iam.tf) instead of a for_each entry.
  # It publishes audio.uploaded (POST /v1/jobs) and job.deleted (DELETE /v1/jobs/{id}, on job-outcomes).
  api_publishes = ["audio-uploaded", "job-outcomes"]
  # uploads: objectUser, because a V4 signed URL acts with its signer's permissions (the browser's PUT is a
  # storage.objects.create by the API's identity) and DELETE removes the original; work and results: read (signed
  # GET URLs) and delete only (google_project_iam_custom_role.api_object_reader_deleter), never write.
  api_bucket_roles = {
    uploads = "roles/storage.objectUser"
    work    = google_project_iam_custom_role.api_object_reader_deleter.name
    results = google_project_iam_custom_role.api_object_reader_deleter.name
  }
  api_image = lookup(var.images, "api", "${local.artifact_repo}/speakerline-api:${var.image_tag}")

  # Seconds a push service may spend on one request: the longest ack deadline among its subscriptions (Pub/Sub
  # waits that long for the push response).
  request_timeout_s = {
    for name, _ in local.push_services : name => max(concat(
      [60], [for sub in values(local.subscriptions) : sub.ack_deadline_s if sub.service == name]
    )...)
  }

  artifact_repo = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  image         = { for name, _ in local.services : name => lookup(var.images, name, "${local.artifact_repo}/speakerline-${name}:${var.image_tag}") }
  # The CPU build of the diarization worker (service.Dockerfile, SERVICE=diarization, torch's CPU wheels): what a
  # worker without a GPU runs. The CUDA image (local.image) stays the one Vertex AI CustomJobs run.
  cpu_worker_image = { for name, _ in local.gpu_services : name => lookup(var.images, "${name}-cpu", "${local.artifact_repo}/speakerline-${name}-cpu:${var.image_tag}") }

  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    # Topology names are bare; the cloud prefixes buckets with the project id.
    SPEAKERLINE_BUCKET_PREFIX = "${var.project_id}-"
    # spans to Cloud Trace, metrics to Cloud Monitoring (speakerline.telemetry)
    SPEAKERLINE_TELEMETRY = "gcp"
  }

  apis = toset(concat([
    "artifactregistry.googleapis.com",
    "cloudtrace.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # signBlob: the API signs V4 URLs with its own identity (no key file)
    "monitoring.googleapis.com", "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ], local.vertex_dispatch ? ["aiplatform.googleapis.com"] : []))
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Fail the plan, not the apply, when the topology and this module's per-service tables disagree.
resource "terraform_data" "topology_checks" {
  input = keys(local.services)

  lifecycle {
    precondition {
      condition     = alltrue([for name in keys(local.services) : contains(keys(local.service_publishes), name)])
      error_message = "A service in topology.yaml has no entry in local.service_publishes (infra/terraform/main.tf)."
    }
    precondition {
      condition = alltrue(flatten([
        for name, topics in local.service_publishes : [for t in topics : contains(keys(local.topology.topics), t)]
      ]))
      error_message = "local.service_publishes names a topic that topology.yaml does not define."
    }
    precondition {
      condition     = alltrue([for sub in values(local.subscriptions) : sub.max_delivery_attempts >= 5 && sub.max_delivery_attempts <= 100])
      error_message = "Pub/Sub dead-letter policies need 5 <= max_delivery_attempts <= 100."
    }
    precondition {
      # Push requests identify their subscription by topic and service (see pubsub.tf).
      condition     = length(distinct([for sub in values(local.subscriptions) : "${sub.service}/${sub.topic}" if sub.push])) == length([for sub in values(local.subscriptions) : sub if sub.push])
      error_message = "A push service has two subscriptions on the same topic; push requests could not tell them apart."
    }
    precondition {
      condition     = alltrue([for t in local.api_publishes : contains(keys(local.topology.topics), t)]) && alltrue([for b in keys(local.api_bucket_roles) : contains(keys(local.topology.buckets), b)])
      error_message = "local.api_publishes or local.api_bucket_roles names a topic or bucket that topology.yaml does not define."
    }
    precondition {
      # The API has its own service account speakerline-api (iam.tf); a topology service of the same name would
      # collide with it.
      condition     = !contains(keys(local.services), "api")
      error_message = "topology.yaml defines a service named api; the HTTP API is deployed by run.tf/iam.tf (google_cloud_run_v2_service.api), not per topology service."
    }
    precondition {
      condition     = alltrue([for sub in values(local.subscriptions) : sub.ack_deadline_s >= 10 && sub.ack_deadline_s <= 600])
      error_message = "Pub/Sub ack deadlines must be within 10..600 s."
    }
  }
}
