terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.30" # gpu_zonal_redundancy_disabled and GA node_selector on Cloud Run v2
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge({ app = "speakerline" }, var.labels)
}
