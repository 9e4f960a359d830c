"""A thin, uniform REST layer over the Kubernetes API for every kind the operator touches.

One small class instead of four typed clients: every call goes through `request`, which also
counts API requests (the scale benchmark reports requests per resource from it).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.rest import ApiException


class Conflict(Exception):
    """The object already exists (creates are idempotent: the caller treats this as done)."""


class Refused(Exception):
    """The API server refused the object for what it is (invalid, or denied by an admission
    webhook or by RBAC): the same create will be refused again until something changes."""


REFUSALS = (400, 403, 422)


def load_client(kubeconfig: str | None = None, connections: int | None = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: KUBECONFIG / ~/.kube/config (or the given file).

    CONNECTIONS: the HTTP connections kept open, at least one per thread that calls concurrently
    (the client's default, 5 per CPU, makes threads beyond it reconnect, TLS and all, per call)."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    if connections:
        cfg.connection_pool_maxsize = max(cfg.connection_pool_maxsize, connections)
    return client.ApiClient(cfg)


def path(
    api_version: str, plural: str, namespace: str | None, name: str | None = None, sub: str | None = None
) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{quote(namespace)}")
    parts.append(plural)
    if name:
        parts.append(quote(name))
    if sub:
        parts.append(sub)
    return "/".join(parts)


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.requests: Counter[str] = Counter()
        self._thread = threading.local()  # requests of the calling thread, for per-reconcile counts

    def thread_requests(self) -> int:
        """API requests the calling thread made through this client so far."""
        return getattr(self._thread, "requests", 0)  # type: ignore[no-any-return]

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        self.requests[method] += 1
        self._thread.requests = self.thread_requests() + 1
        headers = {"Accept": accept, "Content-Type": content_type}
        method, url, headers, body, post = self.api.param_serialize(
            method,
            url,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params=headers, body=body, post_params=post)
        data = response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else None

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path(api_version, plural, namespace, name))  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, plural: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        try:
            items = self.request("GET", path(api_version, plural, namespace), query=query)["items"]
        except ApiException as exc:
            if exc.status == 404:  # the kind is not installed (e.g. no Kubeflow CRDs)
                return []
            raise
        return list(items)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        try:
            return self.request(
                "POST", path(obj["apiVersion"], plural_of(obj), meta.get("namespace")), body=obj
            )  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{obj['kind']} {meta.get('name')} exists") from None
            if exc.status in REFUSALS:
                answer = json.loads(exc.body or "{}") if (exc.body or "").startswith("{") else {}
                why = answer.get("message") or exc.reason
                raise Refused(f"{obj['kind']} {meta.get('name')} refused: {why}") from None
            raise

    def ensure(self, obj: dict[str, Any]) -> bool:
        """Create unless it exists; True when created."""
        try:
            self.create(obj)
            return True
        except Conflict:
            return False

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        return self.request(  # type: ignore[no-any-return]
            "PATCH",
            path(api_version, plural, namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )


_PLURALS = {
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "NetworkPolicy": "networkpolicies",
    "Event": "events",
}


def plural_of(obj: dict[str, Any]) -> str:
    kind = obj["kind"]
    return _PLURALS.get(kind) or kind.lower() + "s"
