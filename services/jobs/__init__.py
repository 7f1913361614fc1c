"""Batch jobs (retraining, scoring, ingestion): run by the CLI locally, as Kubernetes Jobs in a
cluster. Jobs may import training code (models/); services never do."""
