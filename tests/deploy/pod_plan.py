"""The pod a Deployment's template becomes, computed as the kubelet and the container runtime would.

Pure: :func:`plan` reads the rendered Deployment (and :class:`Image`, what the image contributes) and
returns a :class:`PodPlan`: the argv (``command``/``args`` over ENTRYPOINT/CMD, after ``$(VAR)``
expansion), the environment (the ``kubernetes`` Service's variables, ``value``, ``fieldRef``), the
user, group and supplementary groups (pod and container securityContext merged; ``fsGroup`` is a
supplementary group), the bounding capabilities, the volumes (the ServiceAccount's kube-api-access
volume included) and mounts, the ports, and the httpGet probes with the kubelet's defaults.
What it does not model raises :class:`Unsupported`, never a guess; what the kubelet would refuse
raises :class:`PodRejected`. ``deploy.sandbox`` runs the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POD_IP = "10.244.0.10"  # the pod's address in its own network namespace; the kubelet probes it there
API_ACCESS_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# The container runtime's default capabilities (containerd, CRI-O): what `drop` takes away from.
DEFAULT_CAPABILITIES = ("chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid",
                        "setfcap", "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write")

# Fields a process sandbox cannot show and so does not apply: scheduling and spreading, restarts,
# resources (no cgroup limits), lifecycle (the preStop hook is not run on stop), the image fields
# (the image is stood in for), seccompProfile (no seccomp filter is loaded).
_POD_FIELDS_NOT_APPLIED = {"topologySpreadConstraints", "affinity", "nodeSelector", "tolerations",
                           "priorityClassName", "dnsPolicy", "schedulerName", "restartPolicy",
                           "imagePullSecrets"}
_POD_FIELDS = {"containers", "volumes", "securityContext", "serviceAccountName",
               "automountServiceAccountToken", "enableServiceLinks",
               "terminationGracePeriodSeconds"} | _POD_FIELDS_NOT_APPLIED
_CONTAINER_FIELDS_NOT_APPLIED = {"image", "imagePullPolicy", "resources", "lifecycle",
                                 "terminationMessagePath", "terminationMessagePolicy"}
_CONTAINER_FIELDS = {"name", "command", "args", "env", "ports", "readinessProbe", "livenessProbe",
                     "securityContext", "volumeMounts", "workingDir"} | _CONTAINER_FIELDS_NOT_APPLIED
_POD_SECURITY = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile"}
_CONTAINER_SECURITY = {"runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation",
                       "readOnlyRootFilesystem", "capabilities", "privileged", "seccompProfile"}


class Unsupported(Exception):
    """The manifest uses something the sandbox does not model; the message names it."""


class PodRejected(Exception):
    """What the kubelet itself would refuse (runAsNonRoot as root, a Secret that does not exist)."""


@dataclass(frozen=True)
class Image:
    """What the image contributes: ENTRYPOINT, CMD, ENV, USER and WORKDIR; the sandbox stands in for it."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: tuple[int, int] | None = None
    workdir: str = "/"
    # Host directories standing in for the image's files (interpreter, virtualenv, project): the
    # container's user must reach them even where the host hides them (say, under a 0700 /root).
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """An httpGet probe, the kubelet's defaults filled in."""

    scheme: str
    path: str
    port: int
    headers: tuple[tuple[str, str], ...]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


@dataclass(frozen=True)
class KeyToPath:
    """One ``items`` entry: a key of the Secret or ConfigMap, the file it becomes, its own mode."""

    key: str
    path: str
    mode: int | None = None


@dataclass(frozen=True)
class Source:
    """One source of an API-data volume: a Secret, a ConfigMap, the ServiceAccount token, a pod field."""

    kind: str  # "secret", "configMap", "token" or "field"
    name: str = ""  # the Secret's or ConfigMap's name; a field's path
    items: tuple[KeyToPath, ...] | None = None  # None: every key, as a file of its name
    optional: bool = False
    path: str = ""  # the file a token or field becomes


@dataclass(frozen=True)
class Volume:
    """A pod volume: ``emptyDir`` (on the node's disk, a tmpfs for ``Memory``) or ``files`` from the API."""

    name: str
    kind: str  # "emptyDir" or "files"
    sources: tuple[Source, ...] = ()
    default_mode: int = 0o644
    medium: str = ""
    size_bytes: int | None = None


@dataclass(frozen=True)
class Mount:
    """A volumeMount; ``files`` volumes are mounted read-only whatever it says."""

    volume: str
    path: str
    read_only: bool


@dataclass(frozen=True)
class ContainerPlan:
    """How the runtime starts the container."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary
    capabilities: tuple[str, ...]  # the bounding set: empty after drop: ["ALL"]
    no_new_privs: bool
    mounts: tuple[Mount, ...]
    ports: tuple[tuple[str, int], ...]
    readiness: Probe | None
    liveness: Probe | None


@dataclass(frozen=True)
class PodPlan:
    """The pod: what the kubelet derives from the Deployment's template before it starts anything."""

    name: str
    namespace: str
    service_account: str
    fs_group: int | None
    fs_user: int | None  # the one runAsUser all containers share: owner of a projected token
    volumes: tuple[Volume, ...]
    container: ContainerPlan
    grace_seconds: int
    pod_ip: str
    api: tuple[str, int]
    image_paths: tuple[str, ...]


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (third_party/forked/golang/expansion): ``$$`` is a literal ``$``;
    an unknown or unclosed reference stays as written."""
    out: list[str] = []
    cursor = 0
    while cursor < len(text):
        if text[cursor] != "$" or cursor + 1 == len(text):
            out.append(text[cursor])
            cursor += 1
            continue
        following = text[cursor + 1]
        closing = text.find(")", cursor + 2) if following == "(" else -1
        if following == "(" and closing != -1:
            name = text[cursor + 2:closing]
            out.append(variables.get(name, f"$({name})"))
            cursor = closing + 1
            continue
        out.append("$" if following == "$" else "$" + following)
        cursor += 2
    return "".join(out)


def _quantity_bytes(quantity: str) -> int:
    for suffix, factor in {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2}.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _refuse_unknown(what: str, spec: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        raise Unsupported(f"{what}: {', '.join(unknown)} not modelled by the sandbox")


def _probe(spec: Mapping[str, Any] | None, ports: Mapping[str, int]) -> Probe | None:
    if spec is None:
        return None
    if "httpGet" not in spec:
        raise Unsupported(f"probe {spec}: only httpGet is modelled")
    get = spec["httpGet"]
    _refuse_unknown("httpGet", get, {"path", "port", "scheme", "httpHeaders"})
    port = get["port"]
    if isinstance(port, str):
        if port not in ports:
            raise PodRejected(f"probe port {port!r} names no containerPort")
        port = ports[port]
    return Probe(scheme=get.get("scheme", "HTTP"), path=get.get("path", "/"), port=int(port),
                 headers=tuple((header["name"], header["value"]) for header in get.get("httpHeaders", ())),
                 initial_delay=spec.get("initialDelaySeconds", 0), period=spec.get("periodSeconds", 10),
                 timeout=spec.get("timeoutSeconds", 1), success_threshold=spec.get("successThreshold", 1),
                 failure_threshold=spec.get("failureThreshold", 3))


def _items(spec: Mapping[str, Any]) -> tuple[KeyToPath, ...] | None:
    if "items" not in spec:
        return None
    return tuple(KeyToPath(item["key"], item["path"], item.get("mode")) for item in spec["items"])


def _volume(spec: Mapping[str, Any]) -> Volume:
    name = spec["name"]
    if "emptyDir" in spec:
        empty = spec["emptyDir"] or {}
        limit = empty.get("sizeLimit")
        return Volume(name, "emptyDir", medium=empty.get("medium", ""),
                      size_bytes=_quantity_bytes(str(limit)) if limit is not None else None)
    for kind, name_key in (("secret", "secretName"), ("configMap", "name")):
        if kind in spec:
            source = spec[kind]
            files = Source(kind, source[name_key], _items(source), source.get("optional", False))
            return Volume(name, "files", (files,), source.get("defaultMode", 0o644))
    raise Unsupported(f"volume {name}: {sorted(set(spec) - {'name'})} not modelled by the sandbox")


def _service_account_volume() -> Volume:
    """kube-api-access, which the ServiceAccount admission plugin adds to a pod that mounts a token."""
    return Volume("kube-api-access", "files", (
        Source("token", path="token"),
        Source("configMap", "kube-root-ca.crt", (KeyToPath("ca.crt", "ca.crt"),)),
        Source("field", "metadata.namespace", path="namespace"),
    ), default_mode=0o644)


def _service_environment(host: str, port: int) -> dict[str, str]:
    """The ``kubernetes`` Service's variables: the kubelet sets them even with enableServiceLinks false."""
    address = f"tcp://{host}:{port}"
    return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": address,
            f"KUBERNETES_PORT_{port}_TCP": address, f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": str(port), f"KUBERNETES_PORT_{port}_TCP_ADDR": host}


def _environment(container: Mapping[str, Any], service_env: Mapping[str, str],
                 pod_fields: Mapping[str, str]) -> dict[str, str]:
    """The container's variables as the kubelet computes them (makeEnvironmentVariables)."""
    if "envFrom" in container:
        raise Unsupported("envFrom is not modelled by the sandbox")
    defined: dict[str, str] = {}
    for variable in container.get("env", ()):
        name = variable["name"]
        if "valueFrom" not in variable:
            # A value may refer to the variables defined before it and to the Service's.
            defined[name] = expand(variable.get("value", ""), {**service_env, **defined})
            continue
        source = variable["valueFrom"]
        if set(source) != {"fieldRef"}:
            raise Unsupported(f"env {name}: valueFrom {sorted(source)} (only fieldRef is modelled)")
        path = source["fieldRef"]["fieldPath"]
        if path not in pod_fields:
            known = ", ".join(sorted(pod_fields))
            raise Unsupported(f"env {name}: fieldRef {path} (the sandbox knows {known})")
        defined[name] = pod_fields[path]
    return {**service_env, **defined}


def _identity(pod_context: Mapping[str, Any], context: Mapping[str, Any],
              image: Image) -> tuple[int, int, tuple[int, ...]]:
    """User, group and supplementary groups: the container's securityContext over the pod's over USER.

    Supplementary groups are the ones Kubernetes adds (fsGroup, supplementalGroups); a runtime also
    adds the user's groups from the image's /etc/group, which has no entry for a numeric user.
    """
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    gid = context.get("runAsGroup", pod_context.get("runAsGroup"))
    if uid is None:
        if image.user is None:
            raise Unsupported("no runAsUser and no USER in the image stand-in")
        uid, gid = image.user[0], image.user[1] if gid is None else gid
    if gid is None:
        raise Unsupported("runAsUser without runAsGroup: the group would come from the image's /etc/passwd")
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) and uid == 0:
        raise PodRejected("container has runAsNonRoot and image will run as root")
    groups = set(pod_context.get("supplementalGroups", ()))
    if pod_context.get("fsGroup") is not None:
        groups.add(pod_context["fsGroup"])
    return int(uid), int(gid), tuple(sorted(groups))


def _capabilities(context: Mapping[str, Any]) -> tuple[str, ...]:
    capabilities = context.get("capabilities", {})
    if capabilities.get("add"):
        raise Unsupported(f"capabilities.add {capabilities['add']} is not modelled by the sandbox")
    dropped = {name.lower().removeprefix("cap_") for name in capabilities.get("drop", ())}
    return () if "all" in dropped else tuple(c for c in DEFAULT_CAPABILITIES if c not in dropped)


def _argv(container: Mapping[str, Any], image: Image, variables: Mapping[str, str]) -> tuple[str, ...]:
    """command/args over ENTRYPOINT/CMD, as the runtime combines them, after ``$(VAR)`` expansion."""
    command = [expand(part, variables) for part in container.get("command", ())]
    args = [expand(part, variables) for part in container.get("args", ())]
    if command:
        return tuple(command + args)
    return image.entrypoint + (tuple(args) if "args" in container else image.cmd)


def _mounts(container: Mapping[str, Any], volumes: Mapping[str, Volume]) -> list[Mount]:
    mounts = []
    for mount in container.get("volumeMounts", ()):
        _refuse_unknown(f"volumeMount {mount['name']}", mount, {"name", "mountPath", "readOnly"})
        if mount["name"] not in volumes:
            raise PodRejected(f"volumeMount {mount['name']}: no such volume")
        mounts.append(Mount(mount["name"], mount["mountPath"], mount.get("readOnly", False)))
    return mounts


def plan(deployment: Mapping[str, Any], image: Image, api: tuple[str, int], pod_ip: str = POD_IP) -> PodPlan:
    """The pod a replica of ``deployment`` becomes, ``api`` being the API server's address."""
    spec = deployment["spec"]["template"]["spec"]
    _refuse_unknown("pod spec", spec, _POD_FIELDS)
    if len(spec["containers"]) != 1:
        raise Unsupported(f"{len(spec['containers'])} containers: the sandbox runs one")
    container = spec["containers"][0]
    _refuse_unknown(f"container {container['name']}", container, _CONTAINER_FIELDS)
    pod_context = spec.get("securityContext", {})
    context = container.get("securityContext", {})
    _refuse_unknown("pod securityContext", pod_context, _POD_SECURITY)
    _refuse_unknown("container securityContext", context, _CONTAINER_SECURITY)
    if context.get("privileged"):
        raise Unsupported("privileged containers are not modelled by the sandbox")
    if not context.get("readOnlyRootFilesystem"):
        raise Unsupported("readOnlyRootFilesystem false: the sandbox has no writable image layer")

    namespace = deployment["metadata"]["namespace"]
    name = f"{deployment['metadata']['name']}-5d9c7b8f6d-sbx4q"  # <deployment>-<template hash>-<suffix>
    service_account = spec.get("serviceAccountName", "default")
    pod_fields = {"metadata.name": name, "metadata.namespace": namespace, "spec.nodeName": "sandbox-node",
                  "spec.serviceAccountName": service_account, "status.podIP": pod_ip,
                  "status.hostIP": "127.0.0.1"}
    variables = _environment(container, _service_environment(*api), pod_fields)
    uid, gid, groups = _identity(pod_context, context, image)

    volumes = {volume.name: volume for volume in map(_volume, spec.get("volumes", ()))}
    mounts = _mounts(container, volumes)
    if spec.get("automountServiceAccountToken", True) and API_ACCESS_PATH not in {m.path for m in mounts}:
        volumes["kube-api-access"] = _service_account_volume()
        mounts.append(Mount("kube-api-access", API_ACCESS_PATH, True))
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", ()) if "name" in port}
    return PodPlan(
        name=name, namespace=namespace, service_account=service_account, fs_group=pod_context.get("fsGroup"),
        # FsUserFrom: with one container, its runAsUser (from a securityContext, not the image's USER).
        fs_user=context.get("runAsUser", pod_context.get("runAsUser")),
        volumes=tuple(volumes.values()), grace_seconds=spec.get("terminationGracePeriodSeconds", 30),
        pod_ip=pod_ip, api=api, image_paths=image.paths,
        container=ContainerPlan(
            name=container["name"], argv=_argv(container, image, variables),
            # The runtime's HOSTNAME and HOME ("/": no passwd entry), the image's ENV, the kubelet's (wins).
            env=tuple({"HOSTNAME": name, "HOME": "/", **dict(image.env), **variables}.items()),
            workdir=container.get("workingDir", image.workdir), uid=uid, gid=gid, groups=groups,
            capabilities=_capabilities(context),
            no_new_privs=context.get("allowPrivilegeEscalation") is False,
            mounts=tuple(mounts), ports=tuple(ports.items()),
            readiness=_probe(container.get("readinessProbe"), ports),
            liveness=_probe(container.get("livenessProbe"), ports)))
