"""Video classification around the library's classifiers: sample clip sets on disk, and the
3-D convolution against frame averaging comparison."""
