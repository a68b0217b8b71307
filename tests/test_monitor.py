"""Monitors and the background sampler."""

import os
import time

import pytest

from autosys.online.monitor import CounterMonitor, Monitor, Sampler, SystemMonitor, window_features
from autosys.storage import SQLiteStorage


def test_system_monitor_reads_machine_and_process():
    monitor = SystemMonitor(pid=os.getpid())
    monitor.sample()
    x = sum(i * i for i in range(200_000))  # some CPU for the process counters
    reading = monitor.sample()
    assert x > 0
    assert 0 <= reading["cpu_percent"] <= 100
    assert reading["process_rss_bytes"] > 1e6
    assert reading["process_threads"] >= 1
    assert reading["disk_write_bytes_per_s"] >= 0


def test_counter_monitor_reports_rates_fractions_and_percentiles():
    monitor = CounterMonitor("app")
    monitor.sample()
    for i in range(90):
        monitor.record("get", 0.001)
    for i in range(10):
        monitor.record("put", 0.010)
    time.sleep(0.05)
    reading = monitor.sample()
    assert reading["get_fraction"] == pytest.approx(0.9)
    assert reading["put_fraction"] == pytest.approx(0.1)
    assert reading["p95_latency_ms"] == pytest.approx(10.0)
    assert reading["p50_latency_ms"] == pytest.approx(1.0)
    assert 0 < reading["throughput"] <= 100 / 0.05
    assert monitor.sample()["throughput"] == 0  # counters reset after each reading


class Broken(Monitor):
    name = "broken"

    def sample(self):
        raise OSError("device gone")


def test_sampler_buffers_flushes_to_storage_and_survives_a_broken_monitor(tmp_path):
    storage = SQLiteStorage(tmp_path / "s")
    counter = CounterMonitor("app")
    sampler = Sampler([counter, Broken()], interval=0.02, buffer=5, sink=storage, flush_every=3)
    with sampler:
        for _ in range(50):
            counter.record("get", 0.001)
            time.sleep(0.005)
        time.sleep(0.3)
    assert len(sampler.buffer) == 5  # bounded: oldest readings dropped
    assert sampler.errors > 0 and "device gone" in sampler.last_error
    stored = list(storage.observations("app"))
    assert len(stored) >= 8
    assert all("throughput" in reading for _, _, reading in stored)
    assert all(reading == {"error": 1.0} for _, _, reading in storage.observations("broken"))
    assert not sampler._thread.is_alive()


def test_window_features_average_a_frame():
    sampler = Sampler([CounterMonitor("app")], interval=1.0)
    sampler.sample_once()
    sampler.sample_once()
    features = window_features(sampler.frame("app"))
    assert features["throughput"] == 0.0
    with pytest.raises(ValueError):
        Sampler([], interval=0)
