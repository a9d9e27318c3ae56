"""Detection in the service: generated scenes, detector files, detect jobs, regions."""
