"""Pod credentials agent for EC2 nodes: serves the container-credentials
endpoint from a hashed-token cache in front of EKS Auth (or, on self-managed
Kubernetes, TokenReview + the pushed association map + STS)."""
