"""The broker's domain (requests, workflow steps, checks, hygiene rules) and one adapter per Azure service."""
