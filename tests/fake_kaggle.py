"""A local fake of the Kaggle API, for running the real ``kaggle`` client in tests.

The client (kaggle 2.x on kagglesdk) sends JSON POSTs to ``/api/v1/<Service>/<Method>`` when
``KAGGLE_API_ENVIRONMENT=LOCALHOST``; :func:`fake_kaggle_env` points kagglesdk's LOCAL endpoint
at this server. It answers just what the client needs for the competition download, kernel
push/status/output and competition submit, and records every request it gets.

Bound to 127.0.0.1 on a free port, every socket with a timeout, and stopped (at the latest by a
watchdog after ``lifetime`` seconds) by the fixture that starts it.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_KERNEL_SOURCE = 1_000_000  # Kaggle refuses a kernel source of 1 MB or more, with exactly this answer:
KERNEL_TOO_LARGE = "The kernel source must be less than 1 megabytes in size."
USERNAME = "fake-user"
TOKEN = "fake-token-for-tests-0000"  # a dummy: the fake accepts exactly this one
API = "/api/v1/"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body or b"{}")

    @property
    def call(self) -> str:
        return self.path[len(API):] if self.path.startswith(API) else self.path


@dataclass
class FakeState:
    competition_files: dict[str, bytes] = field(default_factory=dict)  # competition -> zip bytes
    kernels: dict[str, dict] = field(default_factory=dict)  # "owner/slug" -> last SaveKernel body, version
    status_script: list[str] = field(default_factory=lambda: ["QUEUED", "RUNNING", "COMPLETE"])
    failure_message: str = ""
    outputs: dict[str, bytes] = field(default_factory=dict)  # file name -> content
    log: str = "[]"
    uploads: dict[str, bytes] = field(default_factory=dict)  # blob token -> uploaded bytes
    submissions: list[dict] = field(default_factory=list)
    status_calls: int = 0


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeKaggle/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds per socket operation

    def log_message(self, format, *args):  # quiet
        pass

    @property
    def fake(self) -> "FakeKaggle":
        return self.server.fake  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self, body: bytes) -> Recorded:
        headers = {k: v for k, v in self.headers.items()}
        entry = Recorded(self.command, self.path, headers, body)
        with self.fake.lock:
            self.fake.requests.append(entry)
        return entry

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: dict, status: int = 200):
        self._send(status, json.dumps(payload).encode())

    def _error(self, status: int, message: str):
        self._json({"code": status, "message": message}, status)

    def _authorized(self, entry: Recorded) -> bool:
        return entry.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _url(self, path: str) -> str:
        return f"{self.fake.url}{path}"

    def do_POST(self):
        entry = self._record(self._body())
        if not self.path.startswith(API):
            return self._error(404, f"no route {self.path}")
        call = entry.call
        state = self.fake.state
        try:
            payload = entry.json
        except json.JSONDecodeError:
            return self._error(400, "body is not JSON")
        if call == "security.OAuthService/IntrospectToken":
            active = payload.get("token") == TOKEN
            return self._json({"active": active, "username": USERNAME if active else ""})
        if not self._authorized(entry):
            return self._error(401, "unauthenticated")
        if call == "competitions.CompetitionApiService/DownloadDataFiles":
            name = payload.get("competitionName", "")
            if name not in state.competition_files:
                return self._error(404, f"competition {name!r} not found")
            self.send_response(302)
            self.send_header("Location", self._url(f"/files/competitions/{name}/{name}.zip"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if call == "kernels.KernelsApiService/SaveKernel":
            slug = payload.get("slug", "")
            if len((payload.get("text") or "").encode()) >= MAX_KERNEL_SOURCE:
                return self._error(400, KERNEL_TOO_LARGE)
            with self.fake.lock:
                version = state.kernels.get(slug, {}).get("version", 0) + 1
                state.kernels[slug] = {"request": payload, "version": version}
                state.status_calls = 0
            return self._json({"ref": f"/code/{slug}", "url": self._url(f"/code/{slug}"), "versionNumber": version})
        if call == "kernels.KernelsApiService/GetKernelSessionStatus":
            slug = f"{payload.get('userName')}/{payload.get('kernelSlug')}"
            if slug not in state.kernels:
                return self._error(404, f"kernel {slug} not found")
            with self.fake.lock:
                status = state.status_script[min(state.status_calls, len(state.status_script) - 1)]
                state.status_calls += 1
            return self._json({"status": status, "failureMessage": state.failure_message if status == "ERROR" else ""})
        if call == "kernels.KernelsApiService/ListKernelSessionOutput":
            slug = f"{payload.get('userName')}/{payload.get('kernelSlug')}"
            if slug not in state.kernels:
                return self._error(404, f"kernel {slug} not found")
            files = [{"fileName": n, "url": self._url(f"/files/kernels/{slug}/output/{n}")} for n in sorted(state.outputs)]
            return self._json({"files": files, "log": state.log})
        if call == "competitions.CompetitionApiService/StartSubmissionUpload":
            token = f"blob-{len(state.uploads) + 1}"
            with self.fake.lock:
                state.uploads[token] = b""
            return self._json({"token": token, "createUrl": self._url(f"/upload/{token}")})
        if call == "competitions.CompetitionApiService/CreateSubmission":
            token = payload.get("blobFileTokens", "")
            if token not in state.uploads or not state.uploads[token]:
                return self._error(400, f"no uploaded blob {token!r}")
            with self.fake.lock:
                state.submissions.append(
                    {
                        "competition": payload.get("competitionName"),
                        "message": payload.get("submissionDescription", ""),
                        "content": state.uploads[token],
                    }
                )
            return self._json({"message": "Successfully submitted to the fake competition", "ref": len(state.submissions)})
        return self._error(404, f"the fake does not implement {call}")

    def do_PUT(self):
        entry = self._record(self._body())
        token = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/upload/") or token not in self.fake.state.uploads:
            return self._error(404, f"no upload {self.path}")
        with self.fake.lock:
            self.fake.state.uploads[token] = entry.body
        return self._json({})

    def do_GET(self):
        self._record(b"")
        state = self.fake.state
        parts = self.path.split("?")[0].strip("/").split("/")
        modified = {"Last-Modified": email.utils.formatdate(self.fake.started, usegmt=True)}
        if parts[:2] == ["files", "competitions"] and len(parts) == 4 and parts[2] in state.competition_files:
            return self._send(200, state.competition_files[parts[2]], "application/zip", modified)
        if parts[:2] == ["files", "kernels"] and len(parts) == 6 and parts[5] in state.outputs:
            return self._send(200, state.outputs[parts[5]], "application/octet-stream", modified)
        return self._error(404, f"no file {self.path}")


class FakeKaggle:
    """``with FakeKaggle() as fake: ...``: serves on ``fake.url`` until the block ends."""

    def __init__(self, lifetime: float = 300.0):
        self.state = FakeState()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.lifetime = lifetime
        self.started = time.time()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def calls(self, name: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if name is None or r.call == name]

    def start(self) -> "FakeKaggle":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.timeout = 1
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Timer(self.lifetime, self.stop)
        watchdog.daemon = True
        self._threads = [serving, watchdog]
        serving.start()
        watchdog.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.shutdown()
        with contextlib.suppress(Exception):
            server.server_close()
        self._threads[1].cancel()

    def __enter__(self) -> "FakeKaggle":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def point_client_at(fake: FakeKaggle, monkeypatch) -> None:
    """Configure the real client (env, endpoint table) to talk to ``fake`` with its dummy token.

    HOME and KAGGLE_CONFIG_DIR go to an empty temporary directory set by the caller beforehand,
    so no real credential is ever read.
    """
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    from kagglesdk import kaggle_env

    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.LOCAL, fake.url)
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    # KaggleApi reads KAGGLE_API_ENVIRONMENT once, when the module is first imported.
    if "--local" not in KaggleApi.args:
        monkeypatch.setattr(KaggleApi, "args", [*KaggleApi.args, "--local"])
