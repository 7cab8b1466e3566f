# Everything that has a name in the messaging and storage topology comes from infra/topology.yaml, the same file
# `speakerline stack up` applies to the local emulators: nothing below hand-copies a topic, subscription, bucket
# or service name. The `profiles` section of the file (faster local retries) is ignored here.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  topology = yamldecode(file("${path.module}/../topology.yaml"))

  sub_defaults = local.topology.defaults.subscription

  # Every service, the API included. Its topology `entrypoint` says how it runs: `http` (the API) is a public
  # Cloud Run service serving its own app (run.tf); the default, `events`, takes its subscriptions' events.
  services       = local.topology.services
  http_services  = { for name, svc in local.services : name => svc if try(svc.entrypoint, "events") == "http" }
  event_services = { for name, svc in local.services : name => svc if try(svc.entrypoint, "events") != "http" }
  gpu_services   = { for name, svc in local.event_services : name => svc if try(svc.gpu, false) }
  # Every CPU event service is a Cloud Run service behind push subscriptions; GPU services pull (no ingress).
  push_services = { for name, svc in local.event_services : name => svc if !try(svc.gpu, false) }

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
    api          = ["audio-uploaded", "job-outcomes"]                   # POST /v1/jobs; job.deleted (DELETE)
  }

  # Bucket access per service: objectViewer = read; objectUser = read + create + overwrite (a redelivered message
  # rewrites the same deterministic object, which objectCreator alone refuses).
  bucket_access = {
    ingest      = { uploads = "roles/storage.objectViewer", work = "roles/storage.objectUser" }
    diarization = { work = "roles/storage.objectUser" }
    postprocess = { work = "roles/storage.objectViewer", results = "roles/storage.objectUser" }
    # uploads: objectUser, because a V4 signed URL acts with its signer's permissions (the browser's PUT is a
    # storage.objects.create by the API's identity) and DELETE removes the original; work and results: read
    # (signed GET URLs) and delete only (google_project_iam_custom_role.api_object_reader_deleter), never write.
    api = {
      uploads = "roles/storage.objectUser"
      work    = google_project_iam_custom_role.api_object_reader_deleter.name
      results = google_project_iam_custom_role.api_object_reader_deleter.name
    }
  }

  # Services that read and write Firestore documents (roles/datastore.user, iam.tf); firestore.tf names every
  # collection and its one writer: the projector writes jobs/, the notification service notification_deliveries/,
  # the API api_claims/ and api_idempotency/ (it only reads jobs/ and api_keys/).
  firestore_users = ["projector", "notification", "api"]
  # Services that sign Cloud Storage V4 URLs with IAM signBlob as themselves (no key file): the API.
  url_signers = ["api"]

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
      condition = alltrue(flatten([
        for name, access in local.bucket_access : [for b in keys(access) : contains(keys(local.topology.buckets), b)]
      ])) && alltrue([for name in concat(keys(local.bucket_access), local.firestore_users, local.url_signers) : contains(keys(local.services), name)])
      error_message = "local.bucket_access, local.firestore_users or local.url_signers names a bucket or service that topology.yaml does not define."
    }
    precondition {
      # An http service takes requests on its own app (the same check as speakerline.topology.parse).
      condition     = alltrue([for sub in values(local.subscriptions) : !contains(keys(local.http_services), sub.service)])
      error_message = "A subscription feeds a service whose entrypoint is http."
    }
    precondition {
      condition     = alltrue([for sub in values(local.subscriptions) : sub.ack_deadline_s >= 10 && sub.ack_deadline_s <= 600])
      error_message = "Pub/Sub ack deadlines must be within 10..600 s."
    }
  }
}
