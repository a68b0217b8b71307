"""`autosys dashboard DIR...`: the report's views served live on localhost, redrawn as trials land.

The page is the report's own (autosys.analysis.report.render_page) without a
payload: it fetches `api/views` and polls `api/state` (every 2 s by default),
fetching the views again when a study's trial or decision counts change. Each
request opens the studies read-only (`mode=ro`), so a running study is never
locked for writing or changed, and nothing read from them is run. A study is
rebuilt only when its own counts changed. Served with the standard library's
`http.server`; it binds to 127.0.0.1 unless told otherwise.

Mounted through the `autosys.commands` entry-point group:

    [project.entry-points."autosys.commands"]
    dashboard = "autosys.cli.dashboard:app"
"""

from __future__ import annotations

import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    context_settings={"allow_interspersed_args": True},
    help="Serve the report's views for study directories live on localhost.",
)
console = Console()
err = Console(stderr=True)


class Dashboard:
    """The studies behind a dashboard: their change counters, and their views rebuilt only when those change."""

    def __init__(self, directories: Sequence[str | Path], poll_ms: int = 2000):
        if not directories:
            raise ValueError("name at least one study directory")
        self.directories = [Path(d) for d in directories]
        self.poll_ms = poll_ms
        self._lock = threading.Lock()
        self._studies: dict[Path, tuple[Any, Any]] = {}  # directory -> (signature, StudyData or error text)
        self._payload: tuple[Any, dict] | None = None  # (signature, payload) last served
        self._plotly_js: bytes | None = None

    def signature(self) -> list:
        """One entry per directory: [trials, finished trials, agent decisions], or the error reading it."""
        from autosys.analysis.report import study_signature
        from autosys.storage import StorageError

        out = []
        for directory in self.directories:
            try:
                out.append(study_signature(directory))
            except StorageError as exc:
                out.append(["error", str(exc)])
        return out

    def payload(self) -> dict:
        """The page's views for every directory (one section each; an unreadable one says why)."""
        from autosys.analysis.report import error_section, load_study, report_payload
        from autosys.storage import StorageError

        with self._lock:  # one rebuild at a time; concurrent requests share its result
            signature = self.signature()
            if self._payload is not None and self._payload[0] == signature:
                return self._payload[1]
            for directory, sig in zip(self.directories, signature):
                cached = self._studies.get(directory)
                if cached is not None and cached[0] == sig:
                    continue
                try:
                    data: Any = load_study(directory, read_only=True)
                except (StorageError, ValueError, KeyError) as exc:
                    data = f"cannot read {directory}: {exc}"
                self._studies[directory] = (sig, data)
            loaded = [self._studies[d][1] for d in self.directories]
            studies = [s for s in loaded if not isinstance(s, str)]
            payload = report_payload(studies, signature=signature)
            payload["title"] = "autosys dashboard"
            errors = [error_section(d, s) for d, s in zip(self.directories, loaded) if isinstance(s, str)]
            payload["sections"].extend(errors)
            self._payload = (signature, payload)
            return payload

    def page(self) -> bytes:
        from autosys.analysis.report import render_page

        return render_page(None, plotly_src="plotly.min.js", poll_ms=self.poll_ms).encode()

    def plotly_js(self) -> bytes:
        if self._plotly_js is None:
            from plotly.offline import get_plotlyjs

            self._plotly_js = get_plotlyjs().encode()
        return self._plotly_js


class _Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard  # set on the subclass make_server builds
    server_version = "autosys-dashboard"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per poll would flood the terminal
        pass

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any) -> None:
        self._send(json.dumps(value, default=str).encode(), "application/json")

    def _host_allowed(self) -> bool:
        """On a loopback address, only requests addressed to localhost: a page elsewhere that rebinds its
        own name to 127.0.0.1 (DNS rebinding) cannot read the studies through the reader's browser."""
        if not _is_loopback(str(self.server.server_address[0])):
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        return _is_loopback(name)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._host_allowed():
            self._send(b"forbidden: address this dashboard as localhost", "text/plain", HTTPStatus.FORBIDDEN)
            return
        try:
            if path in ("/", "/index.html"):
                self._send(self.dashboard.page(), "text/html; charset=utf-8")
            elif path == "/plotly.min.js":
                self._send(self.dashboard.plotly_js(), "text/javascript; charset=utf-8")
            elif path == "/api/state":
                self._json({"signature": self.dashboard.signature()})
            elif path == "/api/views":
                self._json(self.dashboard.payload())
            else:
                self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the page shows the error and keeps polling
            self._send(f"error: {type(exc).__name__}: {exc}".encode(), "text/plain", HTTPStatus.INTERNAL_SERVER_ERROR)

    do_HEAD = do_GET


def make_server(directories: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8050,
                poll_ms: int = 2000) -> ThreadingHTTPServer:
    """A dashboard server, not yet serving (port 0: any free port; `server.server_address` tells which)."""
    dashboard = Dashboard(directories, poll_ms=poll_ms)
    handler = type("DashboardHandler", (_Handler,), {"dashboard": dashboard})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.callback(invoke_without_command=True)
def dashboard(
    directories: list[Path] = typer.Argument(..., help="One or more study directories (or agent directories)."),
    port: int = typer.Option(8050, "--port", help="TCP port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback shares the studies with the network."),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between the page's checks for new trials."),
) -> None:
    """Serve the report's views for DIRECTORIES on http://HOST:PORT/, refreshed as trials land."""
    from autosys.analysis.report import study_signature
    from autosys.storage import StorageError

    if not 0 <= port <= 65535:
        err.print(f"error: --port {port} is not a TCP port (0-65535)", highlight=False, markup=False)
        raise typer.Exit(2)
    if not poll > 0:
        err.print(f"error: --poll must be positive, got {poll}", highlight=False, markup=False)
        raise typer.Exit(2)
    for directory in directories:
        try:
            study_signature(directory)
        except StorageError as exc:
            err.print(f"error: {exc}", highlight=False, markup=False)
            raise typer.Exit(2)
    try:
        server = make_server(directories, host, port, poll_ms=int(poll * 1000))
    except OSError as exc:
        err.print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", highlight=False, markup=False)
        raise typer.Exit(2)
    bound_host, bound_port = server.server_address[:2]
    if not _is_loopback(host):
        err.print(f"warning: listening on {host}: anyone who reaches it can read these studies", highlight=False, markup=False)
    shown_host = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    console.print(f"dashboard on http://{shown_host}:{bound_port}/  ({len(directories)} studies; Ctrl-C to stop)",
                  highlight=False, markup=False)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:  # `python -m autosys.cli.dashboard DIR`
    app()


if __name__ == "__main__":
    main()
