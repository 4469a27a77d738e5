"""debootstrap fetched from a mirror without the network: the mirror is a dict of URLs."""

from __future__ import annotations

import hashlib
import io
import lzma
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.engine import debootstrap
from dockyard.engine.debootstrap import ar_members, fetch_debootstrap
from dockyard.errors import BaseImageUnavailable, DockyardError

MIRROR = "http://mirror.test/debian"


def test_an_unreachable_mirror_says_which_and_how_to_point_elsewhere() -> None:
    with pytest.raises(BaseImageUnavailable) as caught:
        debootstrap._http_get("http://127.0.0.1:9/debian/dists/bookworm/InRelease")
    assert "http://127.0.0.1:9/debian" in caught.value.message
    assert caught.value.remedy is not None
    assert "DOCKYARD_DEBIAN_MIRROR" in caught.value.remedy


def ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


def deb_of(files: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode = len(body), 0o755
            tar.addfile(info, io.BytesIO(body))
    return ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": data.getvalue()})


def mirror(deb: bytes, *, deb_sha: str | None = None) -> Callable[[str], bytes]:
    packages = (
        "Package: other\nVersion: 1\nFilename: pool/main/o/other_1_all.deb\nSHA256: 00\n\n"
        f"Package: debootstrap\nVersion: 1.0.128+nmu2\nFilename: pool/main/d/debootstrap/debootstrap_all.deb\n"
        f"SHA256: {deb_sha or hashlib.sha256(deb).hexdigest()}\nDescription: Bootstrap a basic Debian system\n"
        " continued description\n"
    )
    listing = lzma.compress(packages.encode())
    release = (
        f"Suite: bookworm\nSHA256:\n {hashlib.sha256(listing).hexdigest()} {len(listing)} main/binary-all/Packages.xz\n"
    )
    files = {
        f"{MIRROR}/dists/bookworm/InRelease": release.encode(),
        f"{MIRROR}/dists/bookworm/main/binary-all/Packages.xz": listing,
        f"{MIRROR}/pool/main/d/debootstrap/debootstrap_all.deb": deb,
    }
    return files.__getitem__


def test_debootstrap_is_fetched_checked_and_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debootstrap, "_check_signature", lambda release: None)
    deb = deb_of({"usr/sbin/debootstrap": b"#!/bin/sh\necho debootstrap\n", "usr/share/debootstrap/functions": b""})
    into = tmp_path / "tools" / "debootstrap-bookworm"
    assert fetch_debootstrap(MIRROR, "bookworm", into, get=mirror(deb)) == "1.0.128+nmu2"
    script = into / "usr" / "sbin" / "debootstrap"
    ran = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=True)
    assert ran.stdout == "debootstrap\n"
    assert (into / ".complete").read_text() == "1.0.128+nmu2\n"


def test_a_package_that_does_not_match_the_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debootstrap, "_check_signature", lambda release: None)
    deb = deb_of({"usr/sbin/debootstrap": b"evil"})
    into = tmp_path / "debootstrap"
    with pytest.raises(DockyardError, match="does not match its SHA-256"):
        fetch_debootstrap(MIRROR, "bookworm", into, get=mirror(deb, deb_sha="ab" * 32))
    assert not into.exists()


def test_ar_members_are_read_at_even_offsets() -> None:
    assert list(ar_members(ar({"a": b"odd", "b": b"even"}))) == [("a", b"odd"), ("b", b"even")]
    with pytest.raises(DockyardError, match="not an ar archive"):
        list(ar_members(b"PK\x03\x04"))
