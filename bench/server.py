"""gunicorn for a benchmark, and the HTTP clients that load it. No Django here.

`Gunicorn` starts `config.wsgi` from the venv on a free local port as a child process and
stops it again (use it as a context manager). `sequential` times requests one after the
other on one client; `concurrent` runs several clients at once, each a thread with its own
connection, for a fixed time. Both use http.client: gunicorn's sync workers close the
connection after each response, so every request opens a new one, as a browser's would
behind a proxy that does not keep connections alive.
"""

import http.client
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (not necessarily sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Gunicorn:
    """`gunicorn config.wsgi` with `workers` sync workers on 127.0.0.1, its log in `log`."""

    def __init__(self, env: dict, *, workers: int, log: Path):
        self.env, self.workers, self.log = env, workers, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        gunicorn = Path(sys.executable).parent / "gunicorn"
        args = [
            str(gunicorn),
            "config.wsgi",
            "--workers",
            str(self.workers),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            # A 500-item ingest batch on a busy machine may take seconds, never minutes.
            "--timeout",
            "120",
            "--error-logfile",
            str(self.log),
        ]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - our own venv's gunicorn
            args, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until /healthz answers (any status: the workers are up), or fail with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{self.tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                connection.close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM is gunicorn's graceful stop: the master waits for its workers.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class BadStatus(Exception):
    pass


@dataclass
class Client:
    """One HTTP client: a connection to the server and the headers of a logged-in browser."""

    port: int
    headers: dict = field(default_factory=dict)

    def __post_init__(self):
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, path: str) -> float:
        """Seconds for one GET, body read; raises BadStatus unless it answered 200."""
        started = time.perf_counter()
        try:
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            # A connection the server dropped: one more try on a new one.
            self.connection.close()
            self.connection.request("GET", path, headers=self.headers)
            response = self.connection.getresponse()
            body = response.read()
        elapsed = time.perf_counter() - started
        if response.will_close:
            self.connection.close()
        if response.status != 200:
            raise BadStatus(f"GET {path} answered {response.status}: {body[:300]!r}")
        return elapsed

    def close(self) -> None:
        self.connection.close()


@dataclass
class Latency:
    requests: int
    seconds: float  # wall time
    median_ms: float
    p95_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _latency(times: list[float], wall: float) -> Latency:
    return Latency(
        requests=len(times),
        seconds=wall,
        median_ms=statistics.median(times) * 1000,
        p95_ms=percentile(times, 0.95) * 1000,
    )


def sequential(port: int, headers: dict, path: str, *, runs: int, warmup: int = 8) -> Latency:
    """`runs` GETs one after the other after `warmup` untimed ones (enough to reach every
    worker: which sync worker takes a connection is up to the kernel)."""
    client = Client(port, headers)
    try:
        for _ in range(warmup):
            client.get(path)
        started = time.perf_counter()
        times = [client.get(path) for _ in range(runs)]
        return _latency(times, time.perf_counter() - started)
    finally:
        client.close()


def interleaved(
    port: int, headers: dict, paths: dict[str, str], *, runs: int, warmup: int = 8
) -> dict[str, Latency]:
    """One client GETs each of `paths` (name -> path) in turn, `runs` rounds after `warmup`
    untimed ones, the order rotating each round. Pages compared with each other (the queue
    against the minimal page) are then measured under the same conditions: on a shared
    virtual machine the speed of the whole machine drifts by a quarter within minutes, and
    pages measured one after the other would carry that drift into their ratio."""
    client = Client(port, headers)
    names = list(paths)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for _ in range(warmup):
            for name in names:
                client.get(paths[name])
        started = time.perf_counter()
        for round_ in range(runs):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(client.get(paths[name]))
        wall = time.perf_counter() - started
    finally:
        client.close()
    return {name: _latency(times[name], wall) for name in names}


def concurrent(port: int, headers: dict, path: str, *, clients: int, seconds: float) -> Latency:
    """`clients` threads GET `path` in a loop, each on its own connection, for `seconds`;
    requests/s is every completed request over the wall time until the last one ended."""
    times: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(mine: list[float]) -> None:
        client = Client(port, headers)
        try:
            start.wait()
            while time.perf_counter() < deadline[0] and not failures:
                mine.append(client.get(path))
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(mine,)) for mine in times]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise failures[0]
    return _latency([t for mine in times for t in mine], wall)


def run_in_threads(target, arguments: list[tuple]) -> list:
    """Run target(*args) in one thread per entry; return the results in order, or raise the
    first failure (SystemExit included, which a thread would otherwise swallow)."""
    results: list = [None] * len(arguments)
    failures: list[BaseException] = []

    def work(index: int, args: tuple) -> None:
        try:
            results[index] = target(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            failures.append(error)

    threads = [
        threading.Thread(target=work, args=(index, args)) for index, args in enumerate(arguments)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results
