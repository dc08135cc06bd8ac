"""A ``kubernetes`` ApiClient: from ``--kubeconfig``, in-cluster, or from the default kubeconfig."""

from __future__ import annotations

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from controller.store.select import IN_CLUSTER


class KubeConfigError(Exception):
    """No usable cluster configuration; the message names the source and the problem."""


def api_client(source: str | None) -> client.ApiClient:
    """An ApiClient for ``source``: a kubeconfig path, ``in-cluster``, or None for the default kubeconfig."""
    try:
        if source == IN_CLUSTER:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return client.ApiClient(configuration)
        loaded: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=source)
        return loaded
    except ConfigException as error:
        raise KubeConfigError(f"{source or 'kubeconfig'}: {error}") from None
    except OSError as error:
        raise KubeConfigError(f"{source or 'kubeconfig'}: {error.strerror or error}") from None
