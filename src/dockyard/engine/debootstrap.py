"""The host's Debian mirror, and debootstrap fetched from it with its signature and hashes checked.

A host without debootstrap still bootstraps a base image: the package (a shell script) is
downloaded from the mirror this host's apt uses, its InRelease checked with gpgv where the
host has it, the package list and the package checked against their SHA-256, and the package
unpacked into a directory of dockyard's cache. Nothing is installed on the host.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from dockyard.errors import BaseImageUnavailable, DockyardError

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (DOCKYARD_DEBIAN_MIRROR wins)."""
    if mirror := os.environ.get("DOCKYARD_DEBIAN_MIRROR"):
        return mirror.rstrip("/")
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for match in re.finditer(r"(?:URIs:|^deb)\s+(\S+/debian)/?\s", path.read_text(), re.MULTILINE):
            return match.group(1)
    raise BaseImageUnavailable(
        "no Debian mirror to bootstrap a base image from: this host's apt sources name none",
        remedy="`export DOCKYARD_DEBIAN_MIRROR=http://deb.debian.org/debian` (or a mirror near you)",
    )


def fetch_debootstrap(mirror: str, suite: str, into: Path, get: Callable[[str], bytes] | None = None) -> str:
    """Download Debian's debootstrap package of ``suite`` and unpack it at ``into``; its version.

    The package list is checked against the suite's signed InRelease (with gpgv and the Debian
    keyring, where the host has them), the package against the list's SHA-256.
    """
    get = get or _http_get
    release = get(f"{mirror}/dists/{suite}/InRelease")
    _check_signature(release)
    listing = "main/binary-all/Packages.xz"
    packages = _verified(get(f"{mirror}/dists/{suite}/{listing}"), _sha256_of(release.decode(), listing), listing)
    stanza = _stanza(lzma.decompress(packages).decode(), "debootstrap")
    deb = _verified(get(f"{mirror}/{stanza['Filename']}"), stanza["SHA256"], stanza["Filename"])
    partial = into.with_name(into.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    data = next((body for name, body in ar_members(deb) if name.startswith("data.tar")), None)
    if data is None:
        raise DockyardError(f"{stanza['Filename']} holds no data.tar: not a Debian package")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and paths out of the tree
            tar.extractall(partial, filter="data")
        else:
            tar.extractall(partial)  # noqa: S202 - a package whose SHA-256 matched Debian's list
    (partial / ".complete").write_text(stanza["Version"] + "\n")
    shutil.rmtree(into, ignore_errors=True)
    partial.replace(into)
    return stanza["Version"]


def _http_get(url: str) -> bytes:
    # Imported here: urllib.request brings http.client, email and ssl (~8-10 ms), and only
    # building a base image downloads anything.
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a Debian mirror URL, http(s)
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BaseImageUnavailable(
            f"the Debian mirror does not answer: {url}: {reason}",
            remedy="point DOCKYARD_DEBIAN_MIRROR at a reachable Debian mirror "
            "(e.g. `export DOCKYARD_DEBIAN_MIRROR=http://deb.debian.org/debian`)",
        ) from None


def _check_signature(release: bytes) -> None:
    gpgv = shutil.which("gpgv")
    if gpgv is None or not KEYRING.is_file():
        return  # the hashes below still catch a damaged download; nothing to check the signature with
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as fh:
        fh.write(release)
        fh.flush()
        run = subprocess.run([gpgv, "--keyring", str(KEYRING), fh.name], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise DockyardError(
            f"the Debian mirror's InRelease has no valid signature:\n{run.stderr.strip()[-500:]}",
            remedy="point DOCKYARD_DEBIAN_MIRROR at a trustworthy Debian mirror",
        )


def _sha256_of(release: str, path: str) -> str:
    """The SHA-256 the (In)Release file lists for ``path``."""
    section = release.split("SHA256:", 1)[-1]
    for line in section.splitlines()[1:]:
        if not line.startswith(" "):
            break
        digest, _size, name = line.split()
        if name == path:
            return digest
    raise DockyardError(f"the Debian mirror's InRelease lists no {path}")


def _verified(body: bytes, sha256: str, what: str) -> bytes:
    if hashlib.sha256(body).hexdigest() != sha256:
        raise DockyardError(f"{what} from the Debian mirror does not match its SHA-256: a damaged download")
    return body


def _stanza(packages: str, name: str) -> dict[str, str]:
    """The fields of package ``name`` in a Packages list."""
    for block in packages.split("\n\n"):
        pairs = (line.partition(":") for line in block.splitlines() if not line.startswith(" "))
        fields = {key: value.strip() for key, _, value in pairs}
        if fields.get("Package") == name:
            return fields
    raise DockyardError(f"the Debian mirror's package list has no {name}")


def ar_members(archive: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each member of an ``ar`` archive (a .deb is one)."""
    if not archive.startswith(b"!<arch>\n"):
        raise DockyardError("not an ar archive (a .deb starts with !<arch>)")
    pos = 8
    while pos + 60 <= len(archive):
        header = archive[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        pos += 60
        yield name, archive[pos : pos + size]
        pos += size + size % 2  # members are aligned to even offsets
