"""modelfleet's images built for real from the Dockerfile, with no registry and no Docker.

The base image is Debian bookworm with Python 3.11 made by ``debootstrap`` (no registry can be
reached here, so python:3.11-slim cannot be pulled) and imported with ``podman import``; it is
tagged by a hash of its recipe (suite, variant, package list, mirror) so each machine builds it
once. It is passed as the Dockerfile's ``PYTHON_IMAGE`` build argument (the digest-pinned
default stays for real builds), and every Dockerfile target is built with
``buildah bud --isolation chroot --layers``: an OCI runtime cannot start containers in this
sandbox, chroot isolation can.

pip inside the build reaches the package index through this machine's TLS-inspecting proxy:
its pip.conf goes in as the Dockerfile's optional build secret ``pipconf`` and its CA bundle
directory as a read-only build volume over the image's own /etc/ssl/certs; neither lands in a
layer (tests/kube/test_images.py checks it). A ``-v`` of /etc/pip.conf would not do: buildah
leaves the mount point, an empty /etc/pip.conf, in the layer. pip's downloads stay in the
Dockerfile's cache mount, which buildah keeps under ``$MODELFLEET_CACHE/buildah-tmp`` between
runs (pip's HTTP cache stores nothing behind this proxy: the Dockerfile downloads into the
mount and installs from it).

    images = build_images()          # once per process; fast when nothing changed
    with image_root(images.service) as root:
        assert (root / "opt/venv/bin/python").exists()
    run_in_image(images.model_builder, ["modelfleet", "--help"])

Needs root, ``debootstrap``, ``podman`` and ``buildah`` (scripts/ensure-tools installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELFLEET_CACHE", "/var/cache/modelfleet"))

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
MIRROR = os.environ.get("MODELFLEET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Bump when the way the base root is made changes (not its inputs: those are hashed anyway).
BASE_RECIPE = 1
BASE_REPOSITORY = "localhost/modelfleet-base"

SERVICE_IMAGE = "localhost/modelfleet:kube-test"
MODEL_BUILDER_IMAGE = "localhost/modelfleet-model-builder:kube-test"
TARGETS = {"model-builder": MODEL_BUILDER_IMAGE, "service": SERVICE_IMAGE}

# This machine's settings that pip needs behind the proxy, passed only if present.
PIP_CONF = Path("/etc/pip.conf")  # the Dockerfile's build secret `pipconf`
CA_CERTS = Path("/etc/ssl/certs")  # a read-only volume over the image's own directory
TOOLS = {"debootstrap": "debootstrap", "podman": "podman", "buildah": "buildah", "tar": "tar"}
BUILD_TIMEOUT_S = 3600.0


class ImageBuildError(RuntimeError):
    """The images could not be built: a missing tool or privilege, or a failed build step."""

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output  # the failed step's whole output


@dataclass(frozen=True)
class BuiltImages:
    """Names of the built images in the local containers storage (buildah and podman)."""

    service: str
    model_builder: str


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(
            "building the images needs root (debootstrap, buildah with chroot isolation): "
            "run the tests/kube tests as root, as CI does"
        )
    missing = [package for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise ImageBuildError(
            f"missing tools: {', '.join(missing)}; run scripts/ensure-tools as root "
            f"(or: apt-get install -y {' '.join(missing)})"
        )


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a build step; a failure raises with the step's last output lines."""
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
        stdin=stdin,
        check=False,
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        tail = "\n".join(output.splitlines()[-40:])
        raise ImageBuildError(
            f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{tail}", output=output
        )
    return result


def image_exists(name: str) -> bool:
    """Whether the local containers storage has an image of that name."""
    result = subprocess.run(
        ["podman", "image", "exists", name], capture_output=True, timeout=60, check=False
    )
    return result.returncode == 0


def base_image_name() -> str:
    """The base image's name: its tag is a hash of the recipe, so a changed list rebuilds."""
    recipe = json.dumps([BASE_RECIPE, SUITE, VARIANT, sorted(PACKAGES), MIRROR])
    return f"{BASE_REPOSITORY}:{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def _unmount_below(root: Path) -> None:
    """Unmounts what a failed debootstrap may leave mounted (proc, sys) before the cleanup."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mountpoint in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], capture_output=True, check=False)


def _build_base(name: str) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="base-", dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        try:
            _run(
                ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
                 SUITE, str(root), MIRROR],
                timeout=1800,
            )  # fmt: skip
        finally:
            _unmount_below(root)
        # The downloaded .deb files and apt lists are no part of an image.
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        with subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            assert tar.stdout is not None
            _run(
                ["podman", "import", "--message", f"debootstrap {VARIANT} {SUITE}", "-", name],
                timeout=600,
                stdin=tar.stdout.fileno(),
            )
        if tar.returncode != 0:
            raise ImageBuildError(f"tar of the debootstrap root failed ({tar.returncode})")


def base_image() -> str:
    """The debootstrap base image, built once per machine and recipe."""
    name = base_image_name()
    if not image_exists(name):
        _build_base(name)
    return name


def pip_settings_args() -> list[str]:
    """``buildah bud`` arguments giving the RUN steps this machine's pip settings and CA bundle."""
    args: list[str] = []
    if PIP_CONF.is_file():
        args += ["--secret", f"id=pipconf,src={PIP_CONF}"]
    if CA_CERTS.is_dir():
        args += ["--volume", f"{CA_CERTS}:{CA_CERTS}:ro"]
    return args


def build_target(target: str, tag: str, *, base: str) -> None:
    """One Dockerfile target built with buildah (chroot isolation, layer cache on)."""
    tmpdir = CACHE / "buildah-tmp"  # holds buildah's cache mounts (pip's downloads)
    tmpdir.mkdir(parents=True, exist_ok=True)
    log = CACHE / f"build-{target}.log"  # the last build's whole output, for a failed step
    try:
        result = _run(
            ["buildah", "bud", "--isolation", "chroot", "--layers", "--pull=never",
             "--target", target, "--tag", tag, "--build-arg", f"PYTHON_IMAGE={base}",
             *pip_settings_args(), "--file", str(ROOT / "Dockerfile"), str(ROOT)],
            timeout=BUILD_TIMEOUT_S,
            env={"TMPDIR": str(tmpdir)},
        )  # fmt: skip
    except ImageBuildError as exc:
        log.write_text(exc.output)
        message = f"{exc}\n(target {target!r}; whole output: {log})"
        raise ImageBuildError(message, output=exc.output) from exc
    log.write_text(result.stdout + result.stderr)


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One build at a time on this machine (several test processes may share it)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def build_images() -> BuiltImages:
    """The base image and every Dockerfile target, built (or found up to date) once a process."""
    _check_prerequisites()
    with _machine_lock():
        base = base_image()
        for target, tag in TARGETS.items():
            build_target(target, tag, base=base)
    return BuiltImages(service=SERVICE_IMAGE, model_builder=MODEL_BUILDER_IMAGE)


@contextlib.contextmanager
def working_container(image: str) -> Iterator[str]:
    """A buildah working container of the image, removed on exit."""
    container = _run(["buildah", "from", "--pull=never", image], timeout=300).stdout.strip()
    try:
        yield container
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=300, check=False)


@contextlib.contextmanager
def image_root(image: str) -> Iterator[Path]:
    """The image's root filesystem (``buildah from`` + ``buildah mount``), removed on exit.

    The caller may bind-mount it and remount the bind read-only, as a kubelet does for
    ``readOnlyRootFilesystem``; writes to the path itself go to a throwaway container.
    """
    with working_container(image) as container:
        mountpoint = _run(["buildah", "mount", container], timeout=300).stdout.strip()
        try:
            yield Path(mountpoint)
        finally:
            subprocess.run(
                ["buildah", "umount", container], capture_output=True, timeout=300, check=False
            )


def image_config(image: str) -> dict[str, Any]:
    """The image's OCI config and layers: ``{"config": {...}, "rootfs": {"diff_ids": [...]}}``."""
    inspected = _run(["buildah", "inspect", "--type", "image", image], timeout=120).stdout
    oci: dict[str, Any] = json.loads(inspected)["OCIv1"]
    return oci


def layer_dirs(image: str) -> list[Path]:
    """The image's layers as unpacked in the overlay storage (each layer's own diff), base first."""
    data = _run(
        ["podman", "image", "inspect", "--format", "{{json .GraphDriver.Data}}", image],
        timeout=120,
    ).stdout
    driver: dict[str, str] = json.loads(data)
    lower = [Path(d) for d in driver.get("LowerDir", "").split(":") if d]
    return [*reversed(lower), Path(driver["UpperDir"])]


def run_in_image(
    image: str,
    argv: Sequence[str],
    *,
    user: str | None = "10001:10001",
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Runs a command in a throwaway container of the image (chroot isolation; no OCI runtime).

    Returns the finished process whatever its exit code (stdout and stderr as text).
    ``user=None`` runs as the image's own USER.
    """
    env_args = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    user_args = [] if user is None else ["--user", user]
    with working_container(image) as container:
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", *user_args, *env_args,
             container, "--", *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
