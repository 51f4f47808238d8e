"""One module per Azure service; the only place that imports Azure SDKs."""
