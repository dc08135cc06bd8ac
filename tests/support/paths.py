"""Where the test data lives."""

from __future__ import annotations

import pathlib

TESTS = pathlib.Path(__file__).resolve().parent.parent
PROVIDER_FIXTURES = TESTS / "fixtures" / "providers"
EXAMPLE_GITREPOS = TESTS.parent / "manifests" / "examples" / "gitrepos.yaml"
MANIFESTS = TESTS.parent / "manifests"
HACK = TESTS.parent / "hack"
