"""What the benchmarks share: the local stack they drive, the seed's blocking flow, and the figures table."""
