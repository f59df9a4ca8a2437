"""A light local Kubernetes API for the sandbox and the integration tests,
split by job: tls (the sandbox CA), server (HTTPS), api (routes), authn and
rbac (who may do what), store (objects and resourceVersions), objects (the
verbs), validation, patches, selectors, tables (kubectl get), discovery
(version, API lists, OpenAPI v3) and resources (what is served, its schemas)."""
