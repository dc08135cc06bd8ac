"""Admission webhooks: GitRepo defaulting (mutating) and webhook-Secret validation.

The pure core of the admission server (parse an AdmissionReview, decide, build the response),
its HTTP app, and the reconcile pass that keeps existing GitRepos in line with webhook mode. The
admission Deployment is not reachable from the internet, so it also holds the spec-write right.
"""
