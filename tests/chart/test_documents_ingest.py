"""The documents-ingest CronJob: `modelfleet ingest` on the chatbot's settings, PDFs from a
read-only PersistentVolumeClaim."""

from __future__ import annotations

import kubernetes_validate

from tests.chart.conftest import by_kind, component, render

WITH_INGEST = {"cronJobs": {"documents-ingest": {"enabled": True}}}


def test_off_by_default() -> None:
    assert not [c for c in by_kind(render({}), "CronJob") if component(c) == "documents-ingest"]


def test_ingest_cronjob_mounts_the_pdfs_read_only_and_uses_the_chatbot_config() -> None:
    objects = render(WITH_INGEST)
    (cron,) = [c for c in by_kind(objects, "CronJob") if component(c) == "documents-ingest"]
    kubernetes_validate.validate(cron, "1.30", strict=True)
    assert cron["spec"]["schedule"] == "40 */4 * * *"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["modelfleet", "ingest"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["INGEST_PDF_DIR"] == "/data/documents" and env["INGEST_PRODUCTS"] == "true"
    assert "PGPASSWORD" in env  # the chatbot depends on postgresql
    (config,) = container["envFrom"]
    assert config["configMapRef"]["name"].endswith("-chatbot")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "documents")
    assert mount == {"name": "documents", "mountPath": "/data/documents", "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "documents")
    assert volume["persistentVolumeClaim"] == {
        "claimName": "modelfleet-documents",
        "readOnly": True,
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_claims_and_env_are_per_job() -> None:
    objects = render(
        {
            "cronJobs": {
                "documents-ingest": {
                    "enabled": True,
                    "env": {"INGEST_PDF_DIR": "/pdfs", "INGEST_PRODUCTS": "true"},
                    "volumeClaims": [{"name": "pdfs", "claimName": "shared", "mountPath": "/pdfs"}],
                },
                "classifier-retrain": {"enabled": True},
            }
        }
    )
    crons = {component(c): c for c in by_kind(objects, "CronJob")}
    ingest = crons["documents-ingest"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "pdfs", "persistentVolumeClaim": {"claimName": "shared", "readOnly": True}} in (
        ingest["volumes"]
    )
    retrain = crons["classifier-retrain"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [v["name"] for v in retrain["volumes"]] == ["tmp", "models"]
    assert not any(e["name"].startswith("INGEST_") for e in retrain["containers"][0]["env"])
