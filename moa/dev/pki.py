"""Certificates and kubeconfigs of the local control plane.

One CA signs the API server's serving certificate, the front-proxy client certificate (aggregation
layer) and one client certificate per component identity, so RBAC and Pod Security admission see
the same users as on a real cluster. Files are made only when missing: certificates, and so every
kubeconfig a person copied, survive restarts.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import yaml

SERVICE_IP = "10.96.0.1"  # first address of the service CIDR: the `kubernetes` Service

# CN / O of each client certificate. KWOK writes status for many nodes and pods, so it is admin.
IDENTITIES = {
    "admin": ("moa-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    # addons (addons.py): their upstream ClusterRoles are not installed
    "kueue": ("kueue-controller-manager", "system:masters"),
    "jobset": ("jobset-controller-manager", "system:masters"),
    "trainer": ("kubeflow-trainer-controller-manager", "system:masters"),
    "training-operator": ("training-operator", "system:masters"),
}

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def sign(pki: Path, name: str, subject: str, usage: str, san: str | None = None) -> None:
    """NAME.key + NAME.crt signed by the CA in PKI (unless NAME.crt exists)."""
    if (pki / f"{name}.crt").exists():
        return
    ext, csr = pki / f"{name}.ext", pki / f"{name}.csr"
    ext.write_text(
        f"keyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        + (f"subjectAltName={san}\n" if san else "")
    )
    openssl("req", "-new", *EC_KEY, "-keyout", str(pki / f"{name}.key"), "-out", str(csr), "-subj", subject)
    ca = ["-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "3650"]
    openssl("x509", "-req", "-in", str(csr), *ca, "-extfile", str(ext), "-out", str(pki / f"{name}.crt"))
    ext.unlink()
    csr.unlink()


def write_pki(pki: Path) -> None:
    """CA, API server serving cert, front-proxy client cert (aggregation layer), the addons'
    webhook serving cert (loopback), one client cert per identity, service-account key pair. Only missing files are made, so certs survive restarts."""
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        ca = ["-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"), "-days", "3650"]
        openssl("req", "-x509", *EC_KEY, *ca, "-subj", "/CN=moa-local-ca")
    sans = ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"]
    sans += ["DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", f"IP:{SERVICE_IP}"]
    sign(pki, "apiserver", "/CN=kube-apiserver", "serverAuth", ",".join(sans))
    sign(pki, "front-proxy-client", "/CN=front-proxy-client", "clientAuth")
    sign(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth")
    sign(pki, "webhook-serving", "/CN=moa-webhooks", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    for who, (cn, org) in IDENTITIES.items():
        sign(pki, who, f"/O={org}/CN={cn}" if org else f"/CN={cn}", "clientAuth")
    if not (pki / "sa.pub").exists():
        openssl(
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            str(pki / "sa.key"),
        )
        openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def client_context(pki: Path, who: str = "admin") -> ssl.SSLContext:
    """TLS context that trusts our CA and presents WHO's client certificate."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{who}.crt"), str(pki / f"{who}.key"))
    return ctx


def write_kubeconfig(path: Path, pki: Path, who: str, port: int) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "moa",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": b64("ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": who,
                "user": {"client-certificate-data": b64(f"{who}.crt"), "client-key-data": b64(f"{who}.key")},
            }
        ],
        "contexts": [{"name": "moa", "context": {"cluster": "moa", "user": who}}],
        "current-context": "moa",
    }
    path.write_text(yaml.safe_dump(config))
