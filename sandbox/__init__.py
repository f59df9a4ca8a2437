"""Embedded local stack: moto as the account, EKS emulation, local Kubernetes
APIs, the event router and the node agent, for `make demo` and the tests."""
