"""Real servers on loopback for the source tests: moto's S3 server, a faulty TCP proxy, and a
static file server that answers byte ranges (over TLS when given a certificate)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.serving.server import free_port

START_TIMEOUT_S = 60.0


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[MotoServer]:
    """``moto_server`` on a free loopback port until the block ends (stopped by PID)."""
    port = free_port()
    log = folder / f"moto-{port}.log"
    executable = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = MotoServer(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(process)


def _wait_until_up(server: MotoServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto_server exited:\n{server.log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(server.url + "/moto-api/", timeout=2)
            return
        time.sleep(0.1)
    raise RuntimeError(f"moto_server not up after {START_TIMEOUT_S} s:\n{server.log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


@dataclass
class Faults:
    """What the proxy does to the connections it accepts, in order of arrival."""

    reset_first: int = 0  # this many connections are reset at once (TCP RST)
    answer_next: int = 0  # then this many get ``answer`` instead of reaching the server
    cut: int = 0  # this many responses longer than ``cut_after`` bytes are cut there
    cut_after: int = 16 << 10
    answer: bytes = b""
    pause_after: int | None = None  # stop forwarding responses after this many bytes in all


@dataclass
class FaultyProxy:
    """A loopback TCP proxy in front of ``upstream`` that misbehaves as ``faults`` says.

    ``paused`` is set once the responses forwarded reach ``faults.pause_after`` bytes; they
    then wait until ``release()``.
    """

    upstream: tuple[str, int]
    faults: Faults
    port: int = 0
    accepted: int = 0
    forwarded: int = 0
    cuts: int = 0
    paused: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self._sockets.append(client)
            threading.Thread(target=self._handle, args=(client, number), daemon=True).start()

    def _handle(self, client: socket.socket, number: int) -> None:
        faults = self.faults
        if number <= faults.reset_first:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        if number - faults.reset_first <= faults.answer_next:
            _read_request_head(client)
            with contextlib.suppress(OSError):
                client.sendall(faults.answer)
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        self._pump_responses(upstream, client)

    def _pump_responses(self, source: socket.socket, sink: socket.socket) -> None:
        sent, limit = 0, self.faults.cut_after
        try:
            while data := source.recv(64 << 10):
                if sent + len(data) >= limit and self._take_cut():
                    sink.sendall(data[: limit - sent])
                    break
                self._wait_if_paused(len(data))
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts >= self.faults.cut:
                return False
            self.cuts += 1
            return True

    def _wait_if_paused(self, count: int) -> None:
        limit = self.faults.pause_after
        with self._lock:
            self.forwarded += count
            reached = limit is not None and self.forwarded >= limit
        if reached:
            self.paused.set()
            self._released.wait()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(64 << 10):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _read_request_head(client: socket.socket) -> None:
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = client.recv(4096)
            if not chunk:
                return
            data += chunk


def s3_error_response(status: int, reason: str, code: str) -> bytes:
    body = f"<Error><Code>{code}</Code><Message>{reason}</Message></Error>".encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeFileHandler(BaseHTTPRequestHandler):
    """GET with byte ranges (206) over a folder; counts requests; optional bearer token."""

    protocol_version = "HTTP/1.1"
    root: Path
    token: str | None
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.token is not None and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(401, b"")
            return
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self._answer(404, b"not found")
            return
        data = path.read_bytes()
        match = _RANGE.match(self.headers.get("Range", ""))
        if match is None:
            self._answer(200, data)
            return
        start = int(match.group(1))
        end = min(int(match.group(2)) + 1 if match.group(2) else len(data), len(data))
        self._answer(206, data[start:end], f"bytes {start}-{end - 1}/{len(data)}")

    def _answer(self, status: int, body: bytes, content_range: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def file_server(
    root: Path, *, certificate: tuple[Path, Path] | None = None, token: str | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` on loopback (HTTPS with ``certificate``); yields the URL and a list of
    the paths requested."""
    requests: list[str] = []
    handler = type(
        "Handler", (RangeFileHandler,), {"root": root, "token": token, "requests": requests}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
