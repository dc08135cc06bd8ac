"""The CA bundle patch written into the project's webhook configurations."""

from __future__ import annotations

import base64

from controller.certs.inject import ca_bundle_patch


def test_the_ca_bundle_patch_sets_cabundle_on_every_webhook() -> None:
    configuration = {"webhooks": [{"name": "a", "clientConfig": {}}, {"name": "b", "clientConfig": {}}]}
    patch = ca_bundle_patch(configuration, b"PEM")
    assert patch == [
        {
            "op": "add",
            "path": "/webhooks/0/clientConfig/caBundle",
            "value": base64.b64encode(b"PEM").decode(),
        },
        {
            "op": "add",
            "path": "/webhooks/1/clientConfig/caBundle",
            "value": base64.b64encode(b"PEM").decode(),
        },
    ]
