"""Video: safe decoding with limits, frame sampling at shot changes and on a clock."""
