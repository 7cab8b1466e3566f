"""speakerline shared library: event contracts, Pub/Sub runtime, adapters, topology and the local stack."""
