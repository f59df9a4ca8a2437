"""EKS's documented limits and name rules for pod identity associations,
restated from AWS's documentation (not from podid's models):

- Amazon EKS User Guide, "Amazon EKS service quotas": 5,000 pod identity
  associations per cluster, not adjustable.
- EKS API reference / botocore's eks model, CreatePodIdentityAssociation:
  `policy` only with disableSessionTags=true, at most 2,048 characters; tags:
  at most 50, key 1-128 and value at most 256 characters, the `aws:` prefix is
  reserved; a role that does not exist is refused with InvalidParameterException
  "Role provided in the request does not exist".
- The namespace and service account name Kubernetes objects: a namespace is a
  DNS-1123 label (at most 63 characters), a service account name a DNS-1123
  subdomain (at most 253), both lower-case alphanumerics and '-' ('.' too in
  a subdomain), starting and ending alphanumeric.
"""

from __future__ import annotations

import re

from sandbox import arns

MAX_ASSOCIATIONS_PER_CLUSTER = 5000
MAX_SESSION_POLICY_CHARS = 2048
MAX_TAGS = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
MAX_NAMESPACE_CHARS = 63
MAX_SERVICE_ACCOUNT_CHARS = 253
MAX_PAGE = 100

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(rf"^{_LABEL}$")
DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_PARTITION = "|".join(re.escape(p) for p in sorted(arns.partitions(), key=len, reverse=True))
ROLE_ARN = re.compile(
    rf"^arn:(?P<partition>{_PARTITION}):iam::(?P<account>\d{{12}}):"
    r"role/(?P<path_name>[\w+=,.@/-]+)$"
)
ASSOCIATION_ID = re.compile(r"^a-[a-z0-9]{17}$")
