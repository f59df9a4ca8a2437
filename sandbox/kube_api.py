"""The sandbox's light local Kubernetes API (for `make demo` and the integration
tests), over HTTPS with a per-sandbox CA, working with kubectl and the official
client alike. The implementation lives in sandbox.localkube, split by job; this
module is its public face."""

from sandbox.localkube.api import ClusterAPI
from sandbox.localkube.authn import User
from sandbox.localkube.errors import ApiError
from sandbox.localkube.server import LocalKubernetes
from sandbox.localkube.validation import MAX_CONFIGMAP_BYTES

__all__ = ["MAX_CONFIGMAP_BYTES", "ApiError", "ClusterAPI", "LocalKubernetes", "User"]
