"""After a deployment: teardown, dual-key rotation, and the connections that serve cross-region deployments."""
