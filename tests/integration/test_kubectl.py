"""kubectl v1.34 against the light local API, as a user of the sandbox runs it,
and the same commands against the real kube-apiserver (the reference: every
parametrized case runs against both and expects the same output): verified TLS,
discovery, `get` tables, server-side dry run of the push's manifest, field
validation, Status errors; then what only the sandbox has: the pushed map."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sandbox.localkube import kubeconfig
from sandbox.localkube.tls import CertificateAuthority
from tests.integration.conftest import World
from tests.kubectl import ROOT, kubectl

MANIFEST = ROOT / "deploy" / "webhook-push-rbac.yaml"
CONFIGMAP = ("kube-system", "pod-identity-associations")
BOTH = ["light", "real"]


@dataclass
class Target:
    kind: str
    kubeconfig: Path  # an admin's
    namespace: str  # fresh, empty
    token_kubeconfig: Callable[[str, str], Path]  # (namespace, service account) -> its kubeconfig


@pytest.fixture(params=BOTH)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    namespace = f"kubectl-{uuid.uuid4().hex[:8]}"
    if request.param == "light":
        server = request.getfixturevalue("kube")
        name = f"c-{uuid.uuid4().hex[:8]}"
        api = server.add_cluster(name)
        config = kubeconfig.write(server, name, tmp_path)

        def light_identity(ns: str, account: str) -> Path:
            token = uuid.uuid4().hex
            api.add_static_token(token, f"system:serviceaccount:{ns}:{account}")
            return _token_config(config, token, tmp_path / account)

        kubectl(config, "create", "namespace", namespace)
        yield Target("light", config, namespace, light_identity)
        server.remove_cluster(name)
        return
    real = request.getfixturevalue("real_kube")
    config = tmp_path / "admin.kubeconfig"
    shutil.copy(real.admin_kubeconfig, config)

    def real_identity(ns: str, account: str) -> Path:
        kubectl(config, "create", "serviceaccount", "-n", ns, account)
        token = real.service_account_token(ns, account, ["https://kubernetes.default.svc"], 600)
        return _token_config(config, token, tmp_path / account)

    kubectl(config, "create", "namespace", namespace)
    yield Target("real", config, namespace, real_identity)
    kubectl(config, "delete", "namespace", namespace, "--wait=false")


def _token_config(admin: Path, token: str, directory: Path) -> Path:
    document = yaml.safe_load(admin.read_text())
    document["users"][0]["user"] = {"token": token}
    directory.mkdir()
    path = directory / "config"
    path.write_text(yaml.safe_dump(document))
    return path


def manifest_in(namespace: str) -> str:
    """deploy/webhook-push-rbac.yaml, in a namespace of the test's own."""
    return MANIFEST.read_text().replace("namespace: kube-system", f"namespace: {namespace}")


def test_kubectl_reads_version_namespaces_and_configmaps(target: Target) -> None:
    config, ns = target.kubeconfig, target.namespace
    kubectl(config, "create", "configmap", "-n", ns, "settings", "--from-literal=a=1")
    # When kubectl asks for the version, the namespaces and every ConfigMap
    version = json.loads(kubectl(config, "get", "--raw", "/version").stdout)
    namespaces = kubectl(config, "get", "ns").stdout.splitlines()
    configmaps = kubectl(config, "get", "configmap", "-A").stdout.splitlines()
    one = kubectl(config, "get", "configmap", "-n", ns, "settings").stdout.splitlines()
    # Then it gets a 1.34 server, tables with the apiserver's columns and rows
    assert (version["major"], version["minor"]) == ("1", "34")
    assert version["gitVersion"].startswith("v1.34.")
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    rows = {tuple(line.split()[:2]) for line in namespaces[1:]}
    assert {("default", "Active"), ("kube-system", "Active"), (ns, "Active")} <= rows
    assert configmaps[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [ns, "settings", "1"] in [line.split()[:3] for line in configmaps[1:]]
    assert [line.split()[:2] for line in one] == [["NAME", "DATA"], ["settings", "1"]]
    shown = json.loads(
        kubectl(config, "get", "configmap", "-n", ns, "settings", "-o", "json").stdout
    )
    assert (shown["kind"], shown["apiVersion"], shown["data"]) == ("ConfigMap", "v1", {"a": "1"})


def test_server_dry_run_of_the_push_manifest_validates_answers_and_persists_nothing(
    target: Target,
) -> None:
    config, ns = target.kubeconfig, target.namespace
    manifest = manifest_in(ns)
    # When the manifest is applied with --dry-run=server to a namespace without it
    dry = kubectl(config, "apply", "--dry-run=server", "-f", "-", stdin=manifest)
    # Then every object would be created, and none is
    assert dry.stdout.splitlines() == [
        "configmap/pod-identity-associations created (server dry run)",
        "role.rbac.authorization.k8s.io/podid-webhook-push created (server dry run)",
        "rolebinding.rbac.authorization.k8s.io/podid-webhook-push created (server dry run)",
    ]
    missing = kubectl(config, "get", "role", "-n", ns, "podid-webhook-push", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        'Error from server (NotFound): roles.rbac.authorization.k8s.io "podid-webhook-push" '
        "not found"
    )
    assert kubectl(config, "get", "cm,role,rolebinding", "-n", ns, "-o", "name").stdout in (
        "",
        "configmap/kube-root-ca.crt\n",  # the real server's root CA map in every namespace
    )
    # When it is applied for real, then dry-run again
    kubectl(config, "apply", "-f", "-", stdin=manifest)
    again = kubectl(config, "apply", "--dry-run=server", "-f", "-", stdin=manifest)
    # Then nothing would change
    assert [line.split(" ", 1)[1] for line in again.stdout.splitlines()] == [
        "unchanged (server dry run)"
    ] * 3
    bindings = kubectl(config, "get", "rolebinding", "-n", ns, "-o", "wide").stdout.splitlines()
    assert bindings[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert bindings[1].split()[:2] == ["podid-webhook-push", "Role/podid-webhook-push"]
    assert "podid:webhook-push" in bindings[1]
    # And the dry run of a change answers the changed object without storing it
    changed = kubectl(
        config, "label", "--dry-run=server", "-n", ns, "configmap",
        "pod-identity-associations", "team=platform", "-o", "json",
    )  # fmt: skip
    assert json.loads(changed.stdout)["metadata"]["labels"]["team"] == "platform"
    stored = kubectl(
        config, "get", "configmap", "-n", ns, "pod-identity-associations", "-o", "json"
    )
    assert "team" not in json.loads(stored.stdout)["metadata"]["labels"]


def test_field_validation_and_object_validation_errors_read_as_the_apiservers(
    target: Target,
) -> None:
    config, ns = target.kubeconfig, target.namespace
    unknown = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "typo", "namespace": ns},
        "dta": {"a": "1"},
    }
    # When an object with an unknown field is applied (kubectl validates strictly by default)
    strict = kubectl(config, "apply", "-f", "-", stdin=json.dumps(unknown), check=False)
    # Then the server rejects it and stores nothing
    assert strict.returncode == 1
    assert strict.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" '
        'cannot be handled as a ConfigMap: strict decoding error: unknown field "dta"'
    )
    absent = kubectl(config, "get", "configmap", "typo", "-n", ns, check=False)
    assert absent.stderr.strip() == 'Error from server (NotFound): configmaps "typo" not found'
    # With --validate=warn the field is dropped, the user warned, the object stored
    warned = kubectl(config, "apply", "--validate=warn", "-f", "-", stdin=json.dumps(unknown))
    assert warned.stderr.strip() == 'Warning: unknown field "dta"'
    assert kubectl(config, "get", "configmap", "typo", "-n", ns, "-o", "name").stdout == (
        "configmap/typo\n"
    )
    # An invalid name is a 422 with the field, the value and the rule
    bad = {**unknown, "metadata": {"name": "Bad_Name", "namespace": ns}}
    bad.pop("dta")
    invalid = kubectl(config, "create", "-f", "-", stdin=json.dumps(bad), check=False)
    assert invalid.returncode == 1
    assert invalid.stderr.strip().startswith(
        'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a '
        "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
    )
    # A Role rule without verbs is a 422 as well
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": []}],
    }
    no_verbs = kubectl(config, "create", "-f", "-", stdin=json.dumps(role), check=False)
    assert no_verbs.returncode == 1
    assert no_verbs.stderr.strip() == (
        'The Role "r" is invalid: rules[0].verbs: Required value: verbs must contain at least one '
        "value"
    )


def test_a_user_without_rbac_gets_the_apiservers_forbidden(target: Target) -> None:
    # Given an identity the cluster knows (a service account token) with no RBAC at all
    ns = target.namespace
    config = target.token_kubeconfig(ns, "nobody")
    # When it lists ConfigMaps
    denied = kubectl(config, "get", "configmap", "-n", "kube-system", check=False)
    # Then the server says who cannot do what, where
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        f'Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:'
        f'{ns}:nobody" cannot list resource "configmaps" in API group "" in the namespace '
        '"kube-system"'
    )


# --- the sandbox's own: TLS with its CA, the map the push wrote -----------------------------------
def test_kubectl_refuses_a_server_its_kubeconfig_ca_did_not_sign(
    world: World, tmp_path: Path
) -> None:
    # Given a kubeconfig naming another CA than the one that signed the server
    world.create_cluster("blue")
    document = yaml.safe_load(kubeconfig.write(world.kube, "blue", tmp_path).read_text())
    document["clusters"][0]["cluster"]["certificate-authority-data"] = CertificateAuthority().data
    other = tmp_path / "other" / "config"
    other.parent.mkdir()
    other.write_text(yaml.safe_dump(document))
    # Then kubectl does not talk to it
    refused = kubectl(other, "get", "ns", check=False)
    assert refused.returncode != 0
    assert "certificate signed by unknown authority" in refused.stderr


def test_a_server_dry_run_stores_nothing_and_counts_no_version(
    world: World, tmp_path: Path
) -> None:
    # Given a cluster where the manifest was never applied
    api = world.kube.add_cluster("fresh")
    config = kubeconfig.write(world.kube, "fresh", tmp_path)
    before = api.store.resource_version
    # When the manifest and a change are dry-run on the server
    kubectl(config, "apply", "--dry-run=server", "-f", str(MANIFEST))
    kubectl(config, "create", "namespace", "x", "--dry-run=server")
    # Then the store holds nothing new, not even a new resourceVersion
    assert api.store.resource_version == before
    assert api.find("roles", "kube-system", "podid-webhook-push") is None


def test_kubectl_shows_the_map_the_push_wrote(world: World, tmp_path: Path) -> None:
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
    stored = world.configmap("blue", *CONFIGMAP)
    assert shown["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
