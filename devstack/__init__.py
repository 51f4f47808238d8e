"""The local Azure stack: Azurite (npm) for Storage, an emulator of the Azure control plane, a Functions host."""
