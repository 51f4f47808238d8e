"""Deployment requests: preflight checks, the provisioning workflow and the service the handlers call."""
