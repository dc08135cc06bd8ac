"""Admission webhooks: GitRepo defaulting (mutating) and webhook-Secret validation.

The pure core of the admission server: parse an AdmissionReview, decide, build the
response. The HTTP layer (flask) and the Kubernetes caches live elsewhere and call in here.
"""

from __future__ import annotations

from controller.admission.durations import parse_go_duration
from controller.admission.mutation import DEFAULTED_ANNOTATION, mutate_gitrepo
from controller.admission.reviews import BadReview, Decision, Review, build_response, parse_review
from controller.admission.validation import ALLOWED_KEYS, SECRET_NAME, validate_secret

__all__ = [
    "ALLOWED_KEYS",
    "DEFAULTED_ANNOTATION",
    "SECRET_NAME",
    "BadReview",
    "Decision",
    "Review",
    "build_response",
    "mutate_gitrepo",
    "parse_go_duration",
    "parse_review",
    "validate_secret",
]
