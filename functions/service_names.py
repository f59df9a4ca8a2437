"""The names metrics and logs are published under: constants only, so the
stack's dashboard and alarms (infra/observability.py) can name them without
loading Powertools at synth."""

SERVICE = "podid"
NAMESPACE = "PodIdentityControlPlane"
