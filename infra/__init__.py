"""CDK constructs of the control plane, composed by `infra.stack`."""
