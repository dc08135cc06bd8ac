"""Webhook-mode reconcile against the emulator: existing GitRepos follow the global Secret both ways."""

from __future__ import annotations

import pytest
from kubernetes import client

from controller.fleet.gitrepos import DEFAULTED_ANNOTATION
from controller.admission.reconcile import LEASE_NAME
from support import service
from support.waiting import free_port, wait_for


def _gitrepo(name: str, **spec: object) -> dict:
    return {
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": "fleet-default"},
        "spec": {"repo": f"https://github.com/example/{name}", **spec},
    }


@pytest.fixture
def reconciling(emulator, kubeconfig_path, run_service, dev_certs):
    emulator.create(_gitrepo("plain"))
    emulator.create(_gitrepo("explicit", pollingInterval="30m"))
    port = free_port()
    started = run_service(
        "serve",
        "admission",
        "--listen",
        f"127.0.0.1:{port}",
        "--kubeconfig",
        kubeconfig_path,
        "--tls-cert",
        str(dev_certs / "tls.crt"),
        "--tls-key",
        str(dev_certs / "tls.key"),
        "--reconcile-period",
        "0.1",
    )
    service.wait_ready(f"https://127.0.0.1:{port}", started, verify=str(dev_certs / "ca.crt"))
    return started


def _spec(emulator, name: str) -> dict:
    return emulator.get("gitrepos", "fleet-default", name)["spec"]


def _annotations(emulator, name: str) -> dict:
    return emulator.get("gitrepos", "fleet-default", name)["metadata"].get("annotations") or {}


def _lease_renewals(emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "PUT" and r.path.endswith(f"/leases/{LEASE_NAME}"))


def test_webhook_mode_turning_on_and_off_adjusts_only_defaulted_gitrepos(emulator, reconciling):
    explicit_before = emulator.get("gitrepos", "fleet-default", "explicit")
    # Without the global Secret webhook mode is off: a few passes change nothing.
    wait_for(lambda: _lease_renewals(emulator) >= 3, message="three reconcile passes")
    assert "pollingInterval" not in _spec(emulator, "plain")

    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
            "stringData": {"github": "s3cret"},
        }
    )
    wait_for(lambda: _spec(emulator, "plain").get("pollingInterval") == "1h", message="1h set")
    assert _annotations(emulator, "plain")[DEFAULTED_ANNOTATION] == "true"

    emulator.delete("secrets", "cattle-fleet-system", "gitjob-webhook")
    wait_for(lambda: "pollingInterval" not in _spec(emulator, "plain"), message="1h reverted")
    assert DEFAULTED_ANNOTATION not in _annotations(emulator, "plain")

    explicit_after = emulator.get("gitrepos", "fleet-default", "explicit")
    assert explicit_after["metadata"]["resourceVersion"] == explicit_before["metadata"]["resourceVersion"]


def test_an_interval_an_operator_changed_is_not_reverted(emulator, reconciling, kube_client):
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
            "stringData": {"github": "s3cret"},
        }
    )
    wait_for(lambda: _spec(emulator, "plain").get("pollingInterval") == "1h", message="1h set")
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
        "fleet.cattle.io",
        "v1alpha1",
        "fleet-default",
        "gitrepos",
        "plain",
        {"spec": {"pollingInterval": "2h"}},
    )

    emulator.delete("secrets", "cattle-fleet-system", "gitjob-webhook")
    renewals = _lease_renewals(emulator)
    wait_for(lambda: _lease_renewals(emulator) >= renewals + 3, message="three more reconcile passes")
    assert _spec(emulator, "plain")["pollingInterval"] == "2h"


def test_one_replica_holds_the_lease(emulator, reconciling):
    wait_for(lambda: emulator.get("leases", "cattle-fleet-system", LEASE_NAME), message="the lease")
    lease = emulator.get("leases", "cattle-fleet-system", LEASE_NAME)
    assert lease["spec"]["holderIdentity"]
    assert lease["spec"]["leaseDurationSeconds"] == 15
