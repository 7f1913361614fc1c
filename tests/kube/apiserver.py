"""The FAKE Kubernetes API server of the kubelet stand-in, behind TLS, in a pod network.

No API server can run here. tests/fakes/kube_api.py is a fake of the Jobs API (create, read,
read status); this module serves it over HTTPS on 8443 (minikube's API server port) with a CA
made for the run (PyPI ``cryptography``), in a network namespace of its own: the pod
``kube-apiserver`` in namespace ``default`` behind the Service ``kubernetes`` (443 -> 8443),
as in a cluster. Pods get ``KUBERNETES_SERVICE_HOST``/``PORT`` naming that Service, the CA as
ConfigMap ``kube-root-ca.crt`` and a token file, so the classifier's in-cluster config works.

The server process writes every Job it is sent to ``<spool>/created/`` (the stand-in's Job
controller runs them, tests/kube/conftest.py) and reads Job statuses from ``<spool>/status/``.

    python -m tests.kube.apiserver --cert C --key K --port 8443 --spool DIR   # in the netns
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
PORT = 8443
SERVICE_NAME = "kubernetes"
POD_NAME = "kube-apiserver"
NAMESPACE = "default"
LABELS = {"component": "kube-apiserver", "tier": "control-plane"}
DNS_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local")  # fmt: skip


def make_certificates(folder: Path, ips: list[str]) -> tuple[Path, Path, Path]:
    """(ca.crt, tls.crt, tls.key): a CA and the API server's certificate for ``ips``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubelet-standin-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.crt", folder / "tls.crt", folder / "tls.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


class ApiServerProcess:
    """Host side: the server process in its pod netns, its spool, the Service to reach it."""

    def __init__(self, *, network: Any, folder: Path) -> None:
        self.network = network
        self.folder = folder
        self.spool = folder / "spool"
        (self.spool / "created").mkdir(parents=True, exist_ok=True)
        (self.spool / "status").mkdir(parents=True, exist_ok=True)
        self.pod = network.add_pod(POD_NAME, NAMESPACE, LABELS, {"https": PORT})
        self.ca: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def service() -> dict[str, Any]:
        """The ``kubernetes`` Service of namespace ``default`` (443 -> the API server's 8443)."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": NAMESPACE},
            "spec": {"selector": LABELS,
                     "ports": [{"name": "https", "port": 443, "targetPort": PORT}]},
        }  # fmt: skip

    def start(self, service_ip: str) -> None:
        self.ca, cert, key = make_certificates(self.folder / "pki", [service_ip, self.pod.ip])
        argv = self.pod.exec_argv([sys.executable, "-m", "tests.kube.apiserver",
                                   "--cert", str(cert), "--key", str(key), "--port", str(PORT),
                                   "--spool", str(self.spool)])  # fmt: skip
        log = (self.folder / "apiserver.log").open("ab")
        self._process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while not (self.spool / "listening").exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake API server did not start: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        return (self.folder / "apiserver.log").read_text(errors="replace")[-3000:]

    def created_jobs(self) -> list[dict[str, Any]]:
        """Jobs POSTed to the server so far (oldest first)."""
        files = sorted((self.spool / "created").glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text()) for p in files]

    def set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Status of a Job as the Job controller writes it (the server serves it next GET)."""
        path = self.spool / "status" / f"{namespace}_{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.rename(path)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()


def job_status(succeeded: bool, reason: str) -> dict[str, Any]:
    """A batch/v1 JobStatus with the Complete or Failed condition."""
    condition = {"type": "Complete" if succeeded else "Failed", "status": "True",
                 "reason": "Completed" if succeeded else reason, "message": reason}  # fmt: skip
    counts = {"succeeded": 1} if succeeded else {"failed": 1}
    return {**counts, "conditions": [condition]}


def _serve(args: argparse.Namespace) -> None:
    from tests.fakes.kube_api import FakeKubeApi  # imported in the netns process only

    spool = Path(args.spool)
    api = FakeKubeApi(("0.0.0.0", args.port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    api.server.socket = context.wrap_socket(api.server.socket, server_side=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with api:
        (spool / "listening").write_text(str(args.port))
        seen = 0
        while not stop.wait(0.1):
            for job in api.created[seen:]:
                meta = job["metadata"]
                path = spool / "created" / f"{meta['namespace']}_{meta['name']}.json"
                path.with_suffix(".tmp").write_text(json.dumps(job))
                path.with_suffix(".tmp").rename(path)
                seen += 1
            for status_file in (spool / "status").glob("*.json"):
                namespace, _, name = status_file.stem.partition("_")
                if (namespace, name) in api.jobs:
                    api.jobs[(namespace, name)]["status"] = json.loads(status_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--spool", required=True)
    _serve(parser.parse_args())


if __name__ == "__main__":
    main()
