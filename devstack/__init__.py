"""The local Azure stack: Azurite for Storage, an emulator of the Azure control plane, a Functions host."""
