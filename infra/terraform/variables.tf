variable "project_id" {
  description = "Google Cloud project of this deployment. Also the prefix of every bucket name (bucket names are global)."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run, Artifact Registry and the buckets. Must offer Cloud Run GPUs (nvidia-l4), e.g. us-central1, europe-west1, europe-west4, asia-southeast1."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region such as us-central1 or a multi-region such as nam5). Cannot change after creation."
  type        = string
  default     = "nam5"
}

variable "labels" {
  description = "Extra labels put on every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "kms_key_name" {
  description = "Optional CMEK (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the buckets and the Pub/Sub topics. null = Google-managed keys. The key must be in the region of the buckets; this module grants the GCS and Pub/Sub service agents encrypt/decrypt on it."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protects Cloud Run services and the Firestore database from `terraform destroy`. Turn off only for throwaway environments."
  type        = bool
  default     = true
}

variable "image_tag" {
  description = "Tag of the images pushed to the Artifact Registry repository (speakerline-<service>:<tag>); use an immutable tag such as the git sha."
  type        = string
  default     = "latest"
}

variable "images" {
  description = "Optional full image reference per service name, overriding <repo>/speakerline-<service>:<image_tag>."
  type        = map(string)
  default     = {}
}

variable "service_resources" {
  description = "CPU, memory, max instances and per-instance concurrency of the push (CPU) services, by service name; unlisted services get `default`."
  type = map(object({
    cpu           = optional(string, "1")
    memory        = optional(string, "1Gi")
    max_instances = optional(number, 10)
    concurrency   = optional(number, 8)
  }))
  default = {
    default = {}
    # ingest normalizes whole files in the container's in-memory file system: a 24-hour recording (the default
    # limit) is a 2.6 GiB WAV, so one job per instance.
    ingest = { cpu = "2", memory = "4Gi", max_instances = 10, concurrency = 1 }
    # The API (async FastAPI) mostly waits on Firestore and holds open SSE streams: many requests per instance.
    api = { cpu = "1", memory = "1Gi", max_instances = 10, concurrency = 80 }
  }
}

variable "diarization_min_instances" {
  description = "Always-on GPU workers. The worker pulls its subscription, so Cloud Run sees no requests: with 0 nothing pulls (use 0 only to park the worker)."
  type        = number
  default     = 1

  validation {
    condition     = var.diarization_min_instances >= 0
    error_message = "diarization_min_instances must be >= 0."
  }
}

variable "diarization_max_instances" {
  description = "Upper bound of GPU workers (Cloud Run may add instances on CPU utilization). Bounded by your Cloud Run L4 quota."
  type        = number
  default     = 2
}

variable "diarization_engine" {
  description = "Where diarization runs: \"pyannote\" (pyannote.audio on the worker's NVIDIA L4, Cloud Run GPU), \"embedded\" (the embedded CPU engine on a CPU-only worker: no GPU quota; about 0.15-0.25 x real time on 1 vCPU) or \"vertex\" (a CPU-only worker submits one Vertex AI CustomJob per file, g2-standard-8 + NVIDIA_L4, the GPU image; grants roles/aiplatform.user). Costs: docs/deploy.md."
  type        = string
  default     = "pyannote"

  validation {
    condition     = contains(["pyannote", "embedded", "vertex"], var.diarization_engine)
    error_message = "diarization_engine must be \"pyannote\", \"embedded\" or \"vertex\"."
  }
}

variable "diarization_cpu" {
  description = "vCPUs of a diarization worker. null = 8 with the GPU (Cloud Run requires >= 4 with a GPU), 1 on a CPU-only worker (the embedded engine runs on one thread)."
  type        = string
  default     = null
}

variable "diarization_memory" {
  description = "Memory of a diarization worker. null = 32Gi with the GPU (Cloud Run requires >= 16Gi with a GPU), 4Gi on a CPU-only worker (the embedded engine peaks at ~1.5 GB)."
  type        = string
  default     = null
}

variable "diarization_gpu_zonal_redundancy" {
  description = "Reserve GPU capacity across zones for failover (more expensive, separate quota). false = best effort, cheaper."
  type        = bool
  default     = false
}

variable "pyannote_model" {
  description = "Passed to the diarization worker as SPEAKERLINE_PYANNOTE_MODEL: a Hugging Face model id or a gs:// mirror of it. A gs:// mirror also needs model_mirror_bucket."
  type        = string
  default     = "pyannote/speaker-diarization-3.1"
}

variable "model_mirror_bucket" {
  description = "Optional bucket holding a gs:// mirror of the pyannote model; the diarization service account gets read access to it."
  type        = string
  default     = null
}

variable "service_env" {
  description = "Extra plain environment variables per service name (never secrets: those go through Secret Manager)."
  type        = map(map(string))
  default     = {}
}

variable "results_retention_days" {
  description = "Days the results bucket keeps a job's output.json, RTTM and WebVTT before lifecycle deletion (overrides the topology's value; uploads and work files keep theirs)."
  type        = number
  default     = 30

  validation {
    condition     = var.results_retention_days >= 1 && floor(var.results_retention_days) == var.results_retention_days
    error_message = "results_retention_days must be a whole number of days >= 1."
  }
}

variable "studio_origins" {
  description = "Browser origins (https://studio.example.com) allowed by the CORS rules of the uploads and results buckets: the studio PUTs audio to signed URLs and downloads results straight from Cloud Storage. [\"*\"] = any origin (the signed URL is the credential)."
  type        = list(string)
  default     = ["*"]
}

variable "api_id_token_audience" {
  description = "Audience the API requires of Google-signed ID tokens (SPEAKERLINE_API_ID_TOKEN_AUDIENCE), normally the API's own URL: set it to `terraform output -raw api_url` after the first apply (the URL is not known before the service exists). Default \"\": none configured."
  type        = string
  default     = ""
}

variable "alert_email" {
  description = "Email address notified by the alert policies (dead letters, Pub/Sub backlog age) through a Cloud Monitoring email channel. \"\" = no channel: the policies still open incidents in the console."
  type        = string
  default     = ""
}

variable "backlog_alert_age_s" {
  description = "Seconds the oldest unacknowledged message of a push subscription may wait before its backlog alert fires. A push delivery ends within its ack deadline (at most 600 s) or is retried, so an older message means failures, a stuck service or too few instances."
  type        = number
  default     = 900

  validation {
    condition     = var.backlog_alert_age_s >= 60
    error_message = "backlog_alert_age_s must be >= 60."
  }
}

variable "pull_backlog_alert_age_s" {
  description = "The same for pull subscriptions (the diarization worker), whose worker holds each message, leases extended, for the whole engine run: about an hour for a 24-hour recording on an L4, and one job at a time per worker. Raise it for the CPU engine (RTF ~0.2: ~5 h); past the worker's max lease (12 h, services/diarization/wiring.py MAX_LEASE_S) Pub/Sub redelivers anyway."
  type        = number
  default     = 10800

  validation {
    condition     = var.pull_backlog_alert_age_s >= 60
    error_message = "pull_backlog_alert_age_s must be >= 60."
  }
}

variable "webhook_signing_key_version" {
  description = "Version of the speakerline-webhook-signing-key secret that signs webhooks: \"latest\" (default), or a version number, pinned while a key is rotated (docs/deploy.md)."
  type        = string
  default     = "latest"
}

variable "webhook_signing_key_previous_version" {
  description = "During a rotation, the version being rotated out: every webhook then carries a second v1 signature made with it, so receivers still holding the old key keep verifying. \"\" (default) = none."
  type        = string
  default     = ""
}
