"""An in-repo Kubernetes API-server emulator for the integration tests.

It behaves like kube-apiserver for the official `kubernetes` Python client (v37) and for `kubectl` 1.37,
for the resources this project touches: namespaces, secrets, configmaps, core and events.k8s.io events,
coordination.k8s.io leases, fleet.cattle.io/v1alpha1 gitrepos (with `/status`), and admissionregistration
mutating/validating webhook configurations, whose webhooks it calls over HTTPS. Inside
`resources.serving_also()` it also stores the kinds of a deployment's manifests (Services, Deployments,
RBAC, ...) generically, without controllers. The contract is
`/work/shared/reference/k8s-emulation.md` section 6; `tests/emulator_conformance` encodes it.

Modules: `server` (HTTP, TLS, auth, routing), `api` (verbs), `store` (objects, resourceVersion, watch
history), `watch` (chunked streams), `strategies` (per-type metadata/status/validation rules), `patches`,
`selectors`, `admission` (webhook call chain), `cel` (matchConditions subset), `discovery`, `tlsutil`
(test CA), `hooks` (failure/delay injection, request log), `emulator` (the test-facing `Emulator`),
`fixtures` (pytest fixtures `emulator`, `kube_client`).

Deliberately out of scope (spec 6.14): protobuf; Table output (`as=Table` is ignored, plain lists are
served); aggregated discovery; managedFields and server-side-apply field ownership/conflicts (apply is a
merge, so fields dropped from an applied config are not removed); CRD schema pruning and defaulting
(only the GitRepo `spec.repo`/`spec.pollingInterval` rules are validated); RBAC (every authenticated
request is allowed); consistent snapshots across `limit`/`continue` pages (pages are served, each from
the current state, since the project's reflector pages its lists); dry-run; real Event
semantics (core and events.k8s.io events are stored as separate, ordinary objects, not converted into
each other); garbage collection and namespace finalisation (deleting a namespace removes it and its
objects at once); watch bookmarks; multiple API versions per resource (so `matchPolicy` is moot).
"""
from __future__ import annotations

from .emulator import DEFAULT_NAMESPACES, Emulator
from .hooks import RequestRecord
from .tlsutil import CertPair, test_ca

__all__ = ["Emulator", "RequestRecord", "CertPair", "DEFAULT_NAMESPACES", "test_ca"]
