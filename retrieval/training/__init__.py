"""Training embedding networks on labels: losses, mining, sampling, heads, checkpoints, loop."""
