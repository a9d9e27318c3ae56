"""Prometheus metrics of one API process: requests by route, and catalog figures per scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from lookalike.services.catalog import spaces as space_queries
from lookalike.services.catalog import stats
from lookalike.services.catalog.models import utcnow
from lookalike.services.runtime import Runtime

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CatalogCollector(Collector):
    """Gauges read from the catalog and the loaded replicas at each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("lookalike_catalog_up", "1 when the catalog answered this scrape")
        try:
            families = self._families()
        except SQLAlchemyError as exc:
            log.error("metrics: catalog unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> list[Metric]:
        vectors = GaugeMetricFamily("lookalike_space_vectors", "vectors per space",
                                    labels=["space"])
        images = GaugeMetricFamily("lookalike_images", "catalogued images by status",
                                   labels=["status"])
        jobs = GaugeMetricFamily("lookalike_jobs", "jobs by state (queued = queue depth)",
                                 labels=["state"])
        lag = GaugeMetricFamily("lookalike_replica_lag_changes",
                                "catalog changes a loaded replica has not applied",
                                labels=["space"])
        lag_s = GaugeMetricFamily("lookalike_replica_lag_seconds",
                                  "age of the oldest change a loaded replica has not applied",
                                  labels=["space"])
        with self.runtime.session() as session:
            for space in space_queries.list_spaces(session=session):
                count = space_queries.vector_count(session=session, space_id=space.id)
                vectors.add_metric([space.name], count)
            for status, count in stats.images_by_status(session=session).items():
                images.add_metric([status], count)
            for state, count in stats.jobs_by_state(session=session).items():
                jobs.add_metric([state], count)
            for replica in self.runtime.loaded_replicas():
                lag.add_metric([replica.space_name], replica.lag(session))
                oldest = stats.oldest_change_after(session=session, space_id=replica.space_id,
                                                   watermark=replica.watermark)
                behind = 0.0 if oldest is None else (utcnow() - oldest).total_seconds()
                lag_s.add_metric([replica.space_name], max(0.0, behind))
        return [vectors, images, jobs, lag, lag_s]


class Metrics:
    """The process's registry: request figures recorded by the middleware, catalog gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("lookalike_http_request_duration_seconds",
                                 "request latency by route", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("lookalike_http_requests", "requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.errors = Counter("lookalike_http_errors", "answers with status 4xx/5xx",
                              ["route", "status"], registry=self.registry)
        self.searches = Counter("lookalike_searches", "searches answered, by query kind",
                                ["query"], registry=self.registry)
        self.uploads = Counter("lookalike_uploads", "uploads accepted, by outcome",
                               ["outcome"], registry=self.registry)
        self.in_flight = 0
        Gauge("lookalike_http_requests_in_flight", "requests this process is answering",
              registry=self.registry).set_function(lambda: self.in_flight)

    def watch_catalog(self, runtime: Runtime) -> None:
        self.registry.register(CatalogCollector(runtime))

    def observe(self, *, method: str, route: str, status: int, seconds: float,
                content_type: str) -> None:
        """Record one answered request."""
        self.latency.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
            return
        if (method, route) == ("POST", "/v1/search"):
            self.searches.labels("upload" if content_type.startswith("multipart") else "id").inc()
        elif (method, route) == ("POST", "/v1/images"):
            self.uploads.labels("created" if status == 201 else "duplicate").inc()
