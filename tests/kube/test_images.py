"""The images built for real from the Dockerfile (tests/kube/images.py) and what is inside them.

Each image runs what its pods run: the service image every service's app factory, the
streaming workers and the scoring job; the model-builder image the model build, the retraining
job and the ingest job (the chart runs those Jobs in it: they need the training extra). Run
inside the built images with ``buildah run --isolation chroot`` as the pods' user 10001.

Root only (buildah, debootstrap): without root every test here fails saying so.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import pytest

from tests.kube.images import (
    BuiltImages,
    ImageBuildError,
    base_image_name,
    build_images,
    image_config,
    image_root,
    layer_dirs,
    run_in_image,
)

# A cold build (debootstrap, ~600 MB of wheels) takes minutes; a fresh machine more.
pytestmark = pytest.mark.timeout(3600)

SERVICE_FACTORIES = {
    "services.backend.app": "create_app",
    "services.ride_duration.app": "create_app",
    "services.classifier.app": "create_app",
    "services.chatbot.app": "create_app",
    "services.workers.app": "create_worker_app",
}
SERVICE_JOBS = ("services.jobs.scoring.runner", "services.jobs.scoring.settings")
BUILDER_JOBS = (
    "services.jobs.classifier_retrain",
    "models.classifier.retrain",
    "services.jobs.ingest",
    "models.repository",
    "models.ride_duration",
)


@pytest.fixture(scope="module")
def built() -> BuiltImages:
    try:
        return build_images()
    except ImageBuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _python(image: str, code: str) -> str:
    result = run_in_image(image, ["python", "-c", code])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _imports(modules: dict[str, str] | tuple[str, ...]) -> str:
    names = modules.items() if isinstance(modules, dict) else ((m, "") for m in modules)
    lines = ["import importlib"]
    for module, attr in names:
        lines.append(f"m = importlib.import_module({module!r})")
        if attr:
            lines.append(f"assert callable(getattr(m, {attr!r})), {module!r}")
    lines.append("print('imported')")
    return "\n".join(lines)


def test_service_image_imports_every_service_the_workers_and_the_scoring_job(
    built: BuiltImages,
) -> None:
    assert _python(built.service, _imports({**SERVICE_FACTORIES})).strip() == "imported"
    assert _python(built.service, _imports(SERVICE_JOBS)).strip() == "imported"
    score = run_in_image(built.service, ["modelfleet", "score", "--help"])
    assert score.returncode == 0 and "usage: modelfleet score" in score.stdout, score.stderr


def test_model_builder_image_runs_the_training_jobs(built: BuiltImages) -> None:
    """Defect 2: these modules import pandas / scikit-learn at module level."""
    assert _python(built.model_builder, _imports(BUILDER_JOBS)).strip() == "imported"
    for command in (["train", "classifier"], ["ingest"]):
        result = run_in_image(built.model_builder, ["modelfleet", *command, "--help"])
        assert result.returncode == 0 and "usage: modelfleet" in result.stdout, result.stderr
    entrypoint = image_config(built.model_builder)["config"]["Entrypoint"]
    result = run_in_image(built.model_builder, [*entrypoint, "--help"])
    assert result.returncode == 0 and "--repo" in result.stdout, result.stderr


def test_service_image_has_no_training_extra_and_no_benchmarks(built: BuiltImages) -> None:
    code = (
        "import importlib.util as u\n"
        "print(*[m for m in ('pandas', 'sklearn', 'skl2onnx', 'bench') if u.find_spec(m)])"
    )
    assert _python(built.service, code).strip() == ""
    with image_root(built.service) as root:
        site = next((root / "opt/venv/lib").glob("python3*/site-packages"))
        assert (site / "services").is_dir() and (site / "models").is_dir()
        assert not (site / "bench").exists()
        assert not (root / "src").exists() and not (root / "app/bench").exists()
        assert not (root / "tmp/wheels").exists()


def test_images_run_as_10001_with_the_venv_on_path(built: BuiltImages) -> None:
    for image in (built.service, built.model_builder):
        config = image_config(image)["config"]
        assert config["User"] == "10001:10001"
        assert config["WorkingDir"] == "/app"
        path = next(e for e in config["Env"] if e.startswith("PATH="))
        assert path.startswith("PATH=/opt/venv/bin:")
        # With no --user: the image's own USER, as a pod without runAsUser gets it.
        result = run_in_image(
            image,
            ["python", "-c", "import os, shutil, sys; "
             "print(os.getuid(), os.getgid(), sys.prefix, shutil.which('modelfleet'))"],
            user=None,
        )  # fmt: skip
        assert result.stdout.split() == ["10001", "10001", "/opt/venv", "/opt/venv/bin/modelfleet"]


def test_images_share_the_locked_venv_layers(built: BuiltImages) -> None:
    """A code change rebuilds only the last layers: the model-builder image is the service
    image's venv plus the training extra, and both add only the wheel on top of their venv."""
    service = image_config(built.service)["rootfs"]["diff_ids"]
    builder = image_config(built.model_builder)["rootfs"]["diff_ids"]
    venv = service[:-2]  # the wheel's COPY and its pip install
    assert len(venv) >= 3 and builder[: len(venv)] == venv
    assert len(builder) == len(service) + 2  # + the train.lock's COPY and install


def test_no_layer_holds_the_machines_pip_settings_or_ca_bundle(built: BuiltImages) -> None:
    """pip.conf goes in as a build secret and the proxy's CA bundle as a read-only volume: no
    layer may hold either (not even an empty mount point or a whiteout), and the CA bundle in
    the images is Debian's own, byte for byte."""
    for image in (built.service, built.model_builder):
        layers = layer_dirs(image)
        assert len(layers) >= 5
        for layer in layers:
            for leak in ("etc/pip.conf", "etc/xdg/pip", "root/.config/pip", "root/.pip"):
                assert not (layer / leak).exists() and not (layer / leak).is_symlink(), (
                    f"{image}: layer {layer} holds {leak}"
                )
            assert not [p for p in (layer / "root/.cache").rglob("*") if p.is_file()], (
                f"{image}: the pip cache mount left files in layer {layer}"
            )
            bundle = layer / "etc/ssl/certs/ca-certificates.crt"
            assert layer == layers[0] or not bundle.exists(), f"{image}: {layer} changes {bundle}"
    with image_root(base_image_name()) as base, image_root(built.service) as service:
        debian = base / "etc/ssl/certs/ca-certificates.crt"
        assert debian.stat().st_size > 100_000
        assert filecmp.cmp(debian, service / "etc/ssl/certs/ca-certificates.crt", shallow=False)


def test_build_images_is_cached_per_process() -> None:
    assert build_images() is build_images()


def test_base_image_is_debian_bookworm_with_python_311(built: BuiltImages) -> None:
    with image_root(base_image_name()) as root:
        assert (root / "etc/debian_version").read_text().startswith("12.")
        assert (root / "usr/bin/python3.11").exists() and (root / "usr/sbin/useradd").exists()
        assert not list(Path(root, "var/cache/apt/archives").glob("*.deb"))


def test_build_images_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ImageBuildError, match="needs root"):
        build_images.__wrapped__()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda tool: None if tool == "debootstrap" else real_which(tool)
    )
    with pytest.raises(ImageBuildError, match="missing tools: debootstrap; run scripts/ensure"):
        build_images.__wrapped__()
