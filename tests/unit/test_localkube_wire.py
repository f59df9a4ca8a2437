"""The light Kubernetes API's wire formats, checked against their published
definitions: protobuf request bodies (generated.proto field numbers), patches
(RFC 7386, RFC 6902, strategic merge directives), label selectors, ages."""

from __future__ import annotations

import pytest

from sandbox.localkube import patches, protobuf, selectors, tables
from sandbox.localkube.errors import ApiError


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _entry(key: str, value: str) -> bytes:
    return _field(1, key) + _field(2, value)


def test_a_protobuf_configmap_decodes_to_the_json_it_encodes() -> None:
    # Given a ConfigMap as a typed client encodes it: metadata (name 1, namespace 3,
    # labels 11, an empty selfLink 4, a zero creationTimestamp 8), data 2, immutable 4
    metadata = (
        _field(1, "m") + _field(3, "kube-system") + _field(4, "")
        + _field(8, b"") + _field(11, _entry("app", "podid"))
    )  # fmt: skip
    raw = _field(1, metadata) + _field(2, _entry("a", "1")) + _field(2, _entry("b", "2"))
    raw += _varint(4 << 3) + _varint(1)
    envelope = _field(1, _field(1, "v1") + _field(2, "ConfigMap")) + _field(2, raw)
    # Then it reads as the JSON body, without the zero values Go always writes
    assert protobuf.decode(protobuf.MAGIC + envelope) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "m", "namespace": "kube-system", "labels": {"app": "podid"}},
        "data": {"a": "1", "b": "2"},
        "immutable": True,
    }


@pytest.mark.parametrize(
    "body",
    [b"not protobuf", protobuf.MAGIC + b"\x0a\xff", protobuf.MAGIC + _field(1, _field(2, "Pod"))],
)
def test_a_bad_or_unserved_protobuf_body_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        protobuf.decode(body)
    assert caught.value.code == 400


def test_merge_strategic_and_json_patches() -> None:
    current = {"metadata": {"labels": {"a": "1", "b": "2"}}, "rules": [1, 2]}
    assert patches.merge_patch(current, {"metadata": {"labels": {"a": None, "c": "3"}}}) == {
        "metadata": {"labels": {"b": "2", "c": "3"}},
        "rules": [1, 2],
    }
    # lists are replaced (no merge strategy on these kinds); directives are honoured
    strategic = patches.strategic_merge_patch(
        current, {"rules": [3], "$setElementOrder/rules": [3], "metadata": {"$patch": "replace"}}
    )
    assert strategic == {"metadata": {}, "rules": [3]}
    assert current["rules"] == [1, 2]  # the stored object is never changed in place
    patched = patches.json_patch(
        current,
        [
            {"op": "add", "path": "/rules/-", "value": 9},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "remove", "path": "/metadata/labels/b"},
            {"op": "test", "path": "/rules/0", "value": 1},
        ],
    )
    assert patched == {"metadata": {"labels": {"a": "x"}}, "rules": [1, 2, 9]}
    with pytest.raises(ApiError) as failed:
        patches.json_patch(current, [{"op": "test", "path": "/rules/0", "value": 5}])
    assert failed.value.code == 422


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=podid", True),
        ("app==podid,tier!=web", True),
        ("app in (podid, other)", True),
        ("app notin (podid)", False),
        ("tier", False),
        ("!tier", True),
        ("", True),
    ],
)
def test_label_selectors(selector: str, matches: bool) -> None:
    obj = {"metadata": {"name": "m", "labels": {"app": "podid"}}}
    assert selectors.label_matches(selector, obj) is matches


def test_a_bad_selector_is_a_400() -> None:
    with pytest.raises(ApiError):
        selectors.label_matches("a b c", {"metadata": {"name": "m"}})
    with pytest.raises(ApiError):
        selectors.field_matches("spec.x=1", {"metadata": {"name": "m"}})


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5, "5s"), (119, "119s"), (200, "3m20s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
     (30 * 3600, "30h"), (3 * 86400, "3d"), (400 * 86400, "400d"), (800 * 86400, "2y70d")],
)  # fmt: skip
def test_ages_read_as_kubectl_prints_them(seconds: int, shown: str) -> None:
    assert tables.human_duration(seconds) == shown
