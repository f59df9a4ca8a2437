"""kubectl v1.34 against the light local API, as a user of the sandbox runs it:
verified TLS, discovery, `get` tables, server-side dry run of the push's
manifest, field validation, Status errors, and the map the push wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sandbox.localkube import kubeconfig
from sandbox.localkube.tls import CertificateAuthority
from tests.kubectl import ROOT, kubectl

MANIFEST = ROOT / "deploy" / "webhook-push-rbac.yaml"
CONFIGMAP = ("kube-system", "pod-identity-associations")


@pytest.fixture
def blue(world, tmp_path) -> tuple[object, Path]:
    api = world.create_cluster("blue")
    return api, kubeconfig.write(world.kube, "blue", tmp_path)


def test_kubectl_reads_version_namespaces_and_configmaps_over_verified_tls(blue):
    _, config = blue
    # When kubectl asks for the version, the namespaces and every ConfigMap
    version = json.loads(kubectl(config, "get", "--raw", "/version").stdout)
    namespaces = kubectl(config, "get", "ns").stdout.splitlines()
    configmaps = kubectl(config, "get", "configmap", "-A").stdout.splitlines()
    # Then it gets a 1.34 server, tables with the apiserver's columns and rows
    assert (version["major"], version["minor"]) == ("1", "34")
    assert version["gitVersion"].startswith("v1.34.")
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert {tuple(line.split()[:2]) for line in namespaces[1:]} >= {
        ("default", "Active"),
        ("kube-system", "Active"),
    }
    assert configmaps[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert ["kube-system", "pod-identity-associations", "0"] in [
        line.split()[:3] for line in configmaps[1:]
    ]


def test_kubectl_refuses_a_server_its_kubeconfig_ca_did_not_sign(blue, tmp_path):
    # Given a kubeconfig naming another CA than the one that signed the server
    _, config = blue
    document = yaml.safe_load(config.read_text())
    document["clusters"][0]["cluster"]["certificate-authority-data"] = CertificateAuthority().data
    other = tmp_path / "other" / "config"
    other.parent.mkdir()
    other.write_text(yaml.safe_dump(document))
    # Then kubectl does not talk to it
    refused = kubectl(other, "get", "ns", check=False)
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stderr


def test_server_dry_run_of_the_push_manifest_validates_answers_and_persists_nothing(
    world, tmp_path
):
    # Given a cluster where the manifest was never applied
    api = world.kube.add_cluster("fresh")
    config = kubeconfig.write(world.kube, "fresh", tmp_path)
    version_before = api.store.resource_version
    # When it is applied with --dry-run=server
    dry = kubectl(config, "apply", "--dry-run=server", "-f", str(MANIFEST))
    # Then every object would be created, and none is
    assert dry.stdout.splitlines() == [
        "configmap/pod-identity-associations created (server dry run)",
        "role.rbac.authorization.k8s.io/podid-webhook-push created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/podid-webhook-push created (server dry run)",
    ]
    assert api.store.resource_version == version_before
    missing = kubectl(config, "get", "role", "-n", "kube-system", "podid-webhook-push", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        'Error from server (NotFound): roles.rbac.authorization.k8s.io "podid-webhook-push" '
        "not found"
    )
    # When it is applied for real, then dry-run again
    kubectl(config, "apply", "-f", str(MANIFEST))
    version_applied = api.store.resource_version
    again = kubectl(config, "apply", "--dry-run=server", "-f", str(MANIFEST))
    # Then nothing would change, and nothing did
    assert all(line.endswith("unchanged (server dry run)") for line in again.stdout.splitlines())
    assert api.store.resource_version == version_applied
    bindings = kubectl(config, "get", "rolebinding", "-n", "kube-system", "-o", "wide").stdout
    assert "Role/podid-webhook-push" in bindings
    assert "podid:webhook-push" in bindings
    # And the dry run of a change answers the changed object without storing it
    changed = kubectl(
        config, "label", "--dry-run=server", "-n", "kube-system", "configmap",
        "pod-identity-associations", "team=platform", "-o", "json",
    )  # fmt: skip
    assert json.loads(changed.stdout)["metadata"]["labels"]["team"] == "platform"
    assert "team" not in api.configmap(*CONFIGMAP)["metadata"]["labels"]


def test_field_validation_and_object_validation_errors_read_as_the_apiservers(blue):
    api, config = blue
    unknown = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "typo", "namespace": "default"},
        "dta": {"a": "1"},
    }
    # When an object with an unknown field is applied (kubectl validates strictly by default)
    strict = kubectl(config, "apply", "-f", "-", stdin=json.dumps(unknown), check=False)
    # Then the server rejects it and stores nothing
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "dta"' in strict.stderr
    assert api.configmap("default", "typo") is None
    # With --validate=warn the field is dropped, the user warned, the object stored
    warned = kubectl(config, "apply", "--validate=warn", "-f", "-", stdin=json.dumps(unknown))
    assert 'unknown field "dta"' in warned.stderr
    assert api.configmap("default", "typo")["metadata"]["name"] == "typo"
    # An invalid name is a 422 with the field, the value and the rule
    bad = {**unknown, "metadata": {"name": "Bad_Name", "namespace": "default"}}
    bad.pop("dta")
    invalid = kubectl(config, "create", "-f", "-", stdin=json.dumps(bad), check=False)
    assert invalid.returncode == 1
    assert 'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in (
        invalid.stderr
    )
    # A Role rule without verbs is a 422 as well
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": []}],
    }
    no_verbs = kubectl(config, "create", "-f", "-", stdin=json.dumps(role), check=False)
    assert no_verbs.returncode == 1
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in (
        no_verbs.stderr
    )
    # A missing object: the apiserver's NotFound, as kubectl prints it
    absent = kubectl(config, "get", "configmap", "absent", "-n", "default", check=False)
    assert absent.stderr.strip() == 'Error from server (NotFound): configmaps "absent" not found'


def test_kubectl_shows_the_map_the_push_wrote(world, tmp_path):
    # Given payments/api declared fleet-wide and pushed
    world.given_payments_api("blue")
    config = kubeconfig.write(world.kube, "blue", tmp_path)
    # When the user reads the map with kubectl
    shown = json.loads(
        kubectl(config, "get", "configmap", "-n", CONFIGMAP[0], CONFIGMAP[1], "-o", "json").stdout
    )
    # Then it is the pushed map, as the store holds it
    identities = json.loads(shown["data"]["identities.json"])["identities"]
    assert identities == [{"namespace": "payments", "serviceAccount": "api"}]
    assert shown["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "podid"
    stored = world.apis["blue"].configmap(*CONFIGMAP)
    assert shown["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def test_a_user_without_rbac_gets_the_apiservers_forbidden(world, tmp_path):
    # Given a user the cluster knows (a token) with no RBAC at all
    api = world.create_cluster("blue")
    api.add_static_token("t0ken-for-nobody", "nobody")
    admin = yaml.safe_load(kubeconfig.write(world.kube, "blue", tmp_path).read_text())
    admin["users"][0]["user"] = {"token": "t0ken-for-nobody"}
    config = tmp_path / "nobody" / "config"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(admin))
    # When they list ConfigMaps
    denied = kubectl(config, "get", "configmap", "-n", "kube-system", check=False)
    # Then the server says who cannot do what, where
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): configmaps is forbidden: User "nobody" cannot list '
        'resource "configmaps" in API group "" in the namespace "kube-system"'
    )
