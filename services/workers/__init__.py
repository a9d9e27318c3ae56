"""Job execution on Celery workers over Redis; the tasks call the same service functions."""
