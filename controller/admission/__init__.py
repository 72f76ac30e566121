"""The Kubernetes admission webhook: deny serving workloads whose models are not approved.

``review`` decides (AdmissionReview in, AdmissionReview out); ``model_refs``
finds the models a workload names; ``verdict_lookup`` reads signed verdicts
(MLflow tags, S3 object tags) without writing anything; ``server`` serves it.
"""
