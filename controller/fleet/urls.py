"""Repository URL normalisation: every spelling of one repository gives one comparison key.

GitRepo `spec.repo` values and the URLs in provider payloads both go through `repo_key`, and
GitRepos are then found by key in an index: no regular expression is ever built from a
payload, so a payload URL such as ``https://github.com/.*/.*`` is just a literal key that
names no real repository.

Ignored: the scheme (``https``, ``http``, ``ssh``, ``git``, none), user info, the scheme's default
port, query and fragment, one ``.git`` suffix, empty path segments (trailing or doubled slashes),
ASCII case, and percent-encoding (``%20`` and a space agree; ``%2F`` stays distinct from ``/``).
The scp form ``user@host:path`` is read the way git reads it. Azure DevOps HTTPS, legacy
``*.visualstudio.com`` and SSH ``v3/`` URLs share one ``dev.azure.com/<org>/<project>/<repo>`` key.

Kept, so that two repositories never share a key: any other port of a self-hosted host (two Git
servers on one host are told apart by port; a payload lists its web and SSH URLs, and both are
looked up), and an ``ssh.`` or ``altssh.`` sub-domain except on the SaaS hosts that serve SSH there
(``ssh.github.com``, ``altssh.gitlab.com``, ``altssh.bitbucket.org``).

Not rewritten on purpose: Bitbucket Server's ``/scm/`` HTTP prefix. Its payloads list the HTTP
and the SSH clone link, and both are looked up, so either spelling in a GitRepo matches;
stripping ``scm/`` generically would merge real GitLab groups named ``scm`` with their parent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["AZURE_HOST", "SAAS_SSH_HOSTS", "key_host", "repo_key"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SCP_HOST = re.compile(r"[A-Za-z0-9_.~-]+")
SAAS_SSH_HOSTS = {"ssh.github.com": "github.com", "altssh.gitlab.com": "gitlab.com",
                  "altssh.bitbucket.org": "bitbucket.org"}
"""Where GitHub, GitLab and Bitbucket Cloud serve SSH over port 443, and the web host they stand for."""
# A SaaS host is one service whatever the port it is reached on.
_SAAS_HOSTS = frozenset(SAAS_SSH_HOSTS.values())
_DEFAULT_PORTS = {"https": "443", "http": "80", "ssh": "22", "git": "9418", "git+ssh": "22", "ssh+git": "22"}
AZURE_HOST = "dev.azure.com"
_AZURE_SSH_HOSTS = frozenset({"ssh.dev.azure.com", "vs-ssh.visualstudio.com"})
_VISUALSTUDIO_SUFFIX = ".visualstudio.com"
_AZURE_SSH_VERSION = "v3"
_AZURE_GIT_SEGMENT = "_git"
_AZURE_DEFAULT_COLLECTION = "defaultcollection"


def repo_key(url: str) -> str | None:
    """The comparison key of a repository URL, or None when it names no host or no path.

    Keys are opaque: compare them, never parse them. Never raises.
    """
    split = _split(url.strip())
    if split is None:
        return None
    raw_host, port, raw_path = split
    host = _lower(raw_host).rstrip(".")
    segments = _segments(raw_path)
    if not host or not segments:
        return None
    if _is_azure(host):
        # Only Azure's clone URL shapes name a repository there; anything else must not be taken
        # for some other repository's key.
        return _azure_key(host, segments)
    host = SAAS_SSH_HOSTS.get(host, host)
    if port and host not in _SAAS_HOSTS:
        host = f"{host}:{port}"
    return "/".join((host, *segments))


def key_host(key: str) -> str:
    """The host of a key (without its port): whose service the repository is on."""
    authority = key.split("/", 1)[0]
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.rsplit(":", 1)[0]


def _lower(text: str) -> str:
    # ASCII only: casefold() would make "ß" and "ss" one repository, which no Git server does.
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _split(text: str) -> tuple[str, str, str] | None:
    """Host (user info dropped), port unless it is the scheme's default, and raw path of a URL or
    scp-style address."""
    if not text:
        return None
    scheme, separator, rest = text.partition("://")
    if separator and _SCHEME.fullmatch(scheme):
        rest = rest.split("#", 1)[0].split("?", 1)[0]
        authority, _, path = rest.partition("/")
        host, port, path_head = _split_port(authority.rpartition("@")[2])
        if port.lstrip("0") == _DEFAULT_PORTS.get(_lower(scheme), "").lstrip("0"):
            port = ""
        return host, port.lstrip("0") if port else "", f"{path_head}/{path}"
    colon, slash = text.find(":"), text.find("/")
    if colon != -1 and (slash == -1 or colon < slash):
        # git's own rule: no scheme and a ':' before the first '/' is the scp form.
        user_host, path = text[:colon], text[colon + 1:]
        host = user_host.rpartition("@")[2]
        return (host, "", path) if _SCP_HOST.fullmatch(host) else None
    authority, _, path = text.partition("/")
    host, port, path_head = _split_port(authority.rpartition("@")[2])
    return host, port, f"{path_head}/{path}"


def _split_port(host_port: str) -> tuple[str, str, str]:
    """Host, numeric port and path head: a non-numeric port is the start of the path
    (``ssh://git@host:org/repo``)."""
    if host_port.startswith("["):
        end = host_port.find("]") + 1
        if end == 0:
            return host_port, "", ""
        host, after = host_port[:end], host_port[end:]
    else:
        host, colon, port = host_port.partition(":")
        after = colon + port
    tail = after[1:]
    if tail.isdigit() and tail.isascii():
        return host, tail, ""
    return host, "", tail


def _segments(raw_path: str) -> list[str]:
    segments = [_lower(_decode(segment)) for segment in raw_path.split("/") if segment]
    if segments and segments[-1].endswith(".git") and len(segments[-1]) > len(".git"):
        segments[-1] = segments[-1][: -len(".git")]
    return segments


def _decode(segment: str) -> str:
    # An encoded '/' must not become a separator, or "a%2Fb/c" and "a/b/c" would agree.
    return unquote(segment, errors="replace").replace("/", "%2f")


def _is_azure(host: str) -> bool:
    return host in _AZURE_SSH_HOSTS or host == AZURE_HOST or (
        host.endswith(_VISUALSTUDIO_SUFFIX) and "." not in host[:-len(_VISUALSTUDIO_SUFFIX)]
        and host != _VISUALSTUDIO_SUFFIX[1:])


def _azure_key(host: str, segments: list[str]) -> str | None:
    if host in _AZURE_SSH_HOSTS:
        if len(segments) == 4 and segments[0] == _AZURE_SSH_VERSION:
            return _azure(*segments[1:])
        return None
    if host == AZURE_HOST:
        organisation, rest = segments[0], segments[1:]
    elif host.endswith(_VISUALSTUDIO_SUFFIX):
        organisation, rest = host[: -len(_VISUALSTUDIO_SUFFIX)], segments
        if not organisation or "." in organisation:
            return None
    else:
        return None
    if rest and rest[0] == _AZURE_DEFAULT_COLLECTION:
        rest = rest[1:]
    if len(rest) == 3 and rest[1] == _AZURE_GIT_SEGMENT:
        return _azure(organisation, rest[0], rest[2])
    if len(rest) == 2 and rest[0] == _AZURE_GIT_SEGMENT:
        # A repository named after its project may be addressed without the project.
        return _azure(organisation, rest[1], rest[1])
    return None


def _azure(organisation: str, project: str, repository: str) -> str:
    return f"{AZURE_HOST}/{organisation}/{project}/{repository}"
