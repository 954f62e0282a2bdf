"""The lock-free collectors the hot path counts with: the exposition of prometheus_client's
own `Histogram` and `Counter` for the same observations."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from socket_server.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram

# On a bound, between bounds, above the last one, and zero.
SECONDS = (0.0005, 0.0007, 0.001, 0.003, 2.5, 7.0, 0.0)


def _samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_a_loop_histogram_exposes_what_prometheus_client_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = LoopHistogram("latency_seconds", "help", LATENCY_BUCKETS)
    ours.register(histogram)
    reference = Histogram("latency_seconds", "help", buckets=LATENCY_BUCKETS, registry=theirs)
    for seconds in SECONDS:
        histogram.observe(seconds)
        reference.observe(seconds)
    assert _samples(ours) == _samples(theirs)
    assert ("latency_seconds_bucket", (("le", "0.0005"),), 2.0) in _samples(ours)


def test_a_loop_counter_exposes_what_prometheus_client_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("moves", "help", "game_type")
    ours.register(counter)
    reference = Counter("moves", "help", ["game_type"], registry=theirs)
    for game_type in ("chess", "connect4", "chess"):
        counter.inc(game_type)
        reference.labels(game_type).inc()
    assert _samples(ours) == _samples(theirs)
    assert ("moves_total", (("game_type", "chess"),), 2.0) in _samples(ours)
