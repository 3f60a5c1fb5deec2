"""A private apt for Debian sid, on the mirror this machine's own apt sources already use.

The system's apt state is never touched: the sources list, package lists and archive cache all live
in the pybpfuring cache and reach apt through `-o Dir::...` options. The mirror URI is read from
`/etc/apt/sources.list.d/*.sources` (deb822) or `/etc/apt/sources.list`, so no host name is written
anywhere in the project.

Every .deb `download` returns, whether just downloaded or reused from an earlier fetch, has the
SHA-256 Debian's signed index lists for it (verify.py); one that does not is downloaded again, and a
download that still does not match is an error.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pybpfuring.cache import ensure_private_tree
from pybpfuring.vm.steps import NoAptAccess, VmError, progress, run_step
from pybpfuring.vm.verify import DebHash, deb_matches, signed_package_hashes

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
UPDATE_TIMEOUT = 300.0
DOWNLOAD_TIMEOUT = 600.0
QUERY_TIMEOUT = 120.0
# Messages apt prints when the mirror cannot be reached at all (as opposed to a broken configuration).
_NO_NETWORK = re.compile(r"Could not resolve|Temporary failure resolving|Failed to fetch|"
                         r"Unable to connect|Connection failed|Network is unreachable|"
                         r"Could not connect|No route to host|Connection timed out")


@dataclass(frozen=True)
class Mirror:
    uri: str
    keyring: str

    def verify_keyring(self) -> str:
        """The keyring the signed Release is checked with (apt's `signed-by`, else Debian's)."""
        return self.keyring if self.keyring.startswith("/") else DEFAULT_KEYRING


@dataclass(frozen=True)
class VerifiedDeb:
    """A downloaded .deb and the SHA-256/size the signed index lists for it (checked again at use)."""

    package: str
    path: Path
    expected: DebHash

    def check(self) -> Path:
        if not deb_matches(self.path, self.expected):
            raise VmError("verify packages", f"{self.path} does not have the SHA-256 "
                          f"{self.expected.sha256[:16]}... the signed Packages index lists for {self.package}",
                          "run `pybpfuring vm fetch --refresh`")
        return self.path


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
            continue
        if line.startswith("#") or line[0].isspace() or ":" not in line:
            continue
        key, _, value = line.partition(":")
        current[key.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def mirrors_from_sources(deb822_texts: list[str], one_line_texts: list[str]) -> list[Mirror]:
    """Debian archive mirrors (not the security archive) named by apt source files, in order."""
    found: list[Mirror] = []
    for text in deb822_texts:
        for st in _deb822_stanzas(text):
            if "deb" not in st.get("types", "").split() or st.get("enabled", "yes") == "no":
                continue
            suites = st.get("suites", "").split()
            if not suites or all(s.endswith("-security") for s in suites):
                continue
            for uri in st.get("uris", "").split():
                found.append(Mirror(uri.rstrip("/"), st.get("signed-by", DEFAULT_KEYRING)))
    for text in one_line_texts:
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
            if not m or m.group(3).endswith("-security"):
                continue
            opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            found.append(Mirror(m.group(2).rstrip("/"), opts.get("signed-by", DEFAULT_KEYRING)))
    return [m for m in found if m.uri.startswith(("http://", "https://", "file:", "mirror"))]


def host_mirror(etc: Path = Path("/etc/apt")) -> Mirror:
    """The first Debian archive mirror the host's apt is configured with."""
    deb822 = [p.read_text(errors="replace") for p in sorted((etc / "sources.list.d").glob("*.sources"))]
    one_line = [p.read_text(errors="replace") for p in
                [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))] if p.is_file()]
    mirrors = mirrors_from_sources(deb822, one_line)
    if not mirrors:
        raise NoAptAccess("find the apt mirror", f"no Debian archive source is configured in {etc}",
                          "this machine's apt has no mirror to fetch Debian sid packages from")
    return mirrors[0]


class PrivateApt:
    """apt-get / apt-cache confined to `root`, with sources naming `suite` on `mirror`."""

    def __init__(self, root: Path, mirror: Mirror, suite: str = "sid", retries: int | None = None):
        self.root = root
        self.retries = retries  # None: apt's own default (it retries transient failures)
        self.mirror = mirror
        self.suite = suite
        for sub in ("lists/partial", "cache/archives/partial", "etc"):
            ensure_private_tree(root, sub)
        self.sources = root / "etc" / "sources.list"
        keyring = f"[signed-by={mirror.keyring}] " if mirror.keyring.startswith("/") else ""
        self.sources.write_text(f"deb {keyring}{mirror.uri} {suite} main\n")

    def options(self) -> list[str]:
        opts = {
            "Dir::Etc::SourceList": str(self.sources),
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": "/dev/null",
            "Dir::State::Lists": str(self.root / "lists"),
            "Dir::Cache": str(self.root / "cache"),
            "Dir::State::status": "/dev/null",
            # A mirror snapshot may serve a Release whose Valid-Until has passed.
            "Acquire::Check-Valid-Until": "false",
            "APT::Architecture": "amd64",
            "APT::Architectures": "amd64",
        }
        if self.retries is not None:
            opts["Acquire::Retries"] = str(self.retries)
        if os.geteuid() == 0:
            # Downloads land in our cache, which the unprivileged _apt user may not enter.
            opts["APT::Sandbox::User"] = "root"
        out: list[str] = []
        for key, value in opts.items():
            out += ["-o", f"{key}={value}"]
        return out

    def update(self) -> None:
        step = f"apt-get update ({self.suite} on {self.mirror.uri})"
        try:
            run_step(step, ["apt-get", "-q", *self.options(), "update"], UPDATE_TIMEOUT)
        except VmError as err:
            if _NO_NETWORK.search(err.message) or "did not finish" in err.message:
                raise NoAptAccess(step, err.message, "apt cannot reach the mirror from this machine") from None
            raise
        lists = list((self.root / "lists").glob("*Packages*"))
        if not lists:
            raise NoAptAccess(step, "apt fetched no package list (is the mirror reachable?)")

    def package_names(self, prefix: str) -> list[str]:
        proc = run_step("apt-cache pkgnames", ["apt-cache", *self.options(), "pkgnames", prefix],
                        QUERY_TIMEOUT)
        return sorted(proc.stdout.decode().split())

    def versions(self, packages: list[str]) -> dict[str, str]:
        """Candidate version of each package; a package sid lacks is a VmError naming it."""
        proc = run_step("apt-cache policy", ["apt-cache", *self.options(), "policy", *packages],
                        QUERY_TIMEOUT)
        found: dict[str, str] = {}
        name = ""
        for line in proc.stdout.decode().splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                name = line[:-1]
            elif line.strip().startswith("Candidate:") and name:
                found[name] = line.split(":", 1)[1].strip()
        missing = [p for p in packages if found.get(p, "(none)") == "(none)"]
        if missing:
            raise VmError("apt-cache policy", f"{self.suite} has no package {', '.join(missing)}")
        return found

    def signed_hashes(self, versions: dict[str, str]) -> dict[str, DebHash]:
        """What each package's .deb must hash to, from the index apt verified (re-verified now)."""
        return signed_package_hashes(self.root / "lists", self.mirror.verify_keyring(), versions)

    def download(self, packages: list[str], dest: Path) -> list[VerifiedDeb]:
        """The .deb files of `packages` in `dest`, each matching the signed index; ones already there
        are reused only if they match, else downloaded again."""
        versions = self.versions(packages)
        expected = self.signed_hashes(versions)
        for p in packages:
            old = _deb_file(dest, p, versions[p])
            if old is not None and not deb_matches(old, expected[p]):
                progress(f"{old.name} does not match the signed index; downloading it again")
                old.unlink()
        missing = [p for p in packages if _deb_file(dest, p, versions[p]) is None]
        if missing:
            step = f"apt-get download {' '.join(missing)}"
            try:
                run_step(step, ["apt-get", "-q", *self.options(), "download", *missing],
                         DOWNLOAD_TIMEOUT, cwd=dest)
            except VmError as err:
                if _NO_NETWORK.search(err.message):
                    raise NoAptAccess(step, err.message) from None
                raise
        debs = []
        for p in packages:
            path = _deb_file(dest, p, versions[p])
            if path is None:
                raise VmError("apt-get download", f"apt reported success but wrote no .deb for {p}")
            debs.append(VerifiedDeb(p, path, expected[p]))
            debs[-1].check()
        return debs


def _deb_file(dest: Path, package: str, version: str) -> Path | None:
    """The downloaded .deb of `package` at `version` (apt writes an epoch's ':' as '%3a')."""
    matches = sorted(dest.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
    return matches[0] if matches else None
