"""Manifests read into the Kubernetes client's own model classes."""

from typing import Any

from kubernetes import client as k8s


def as_model(document: dict[str, Any], model: str) -> Any:
    """`document` as the client's `model` class (e.g. "V1DaemonSet"). The client
    deserializes a plain dict only through a private method; the result is Any
    because the models type every field optional and tests walk them freely."""
    deserialize = getattr(k8s.ApiClient(), "_ApiClient__deserialize")  # noqa: B009 (name-mangled)
    return deserialize(document, model)


def meta(obj: Any) -> k8s.V1ObjectMeta:
    """An object's metadata, which every object the API returns has."""
    found: k8s.V1ObjectMeta | None = obj.metadata
    assert found is not None, obj
    return found
