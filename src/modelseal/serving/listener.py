"""The server's listening socket, bound by modelseal before anything is loaded.

Left to uvicorn, a port that another process holds fails after the model has started to
load, with uvicorn's own exit status 3 (modelseal's "another seal is served here") and, now
and then, a C++ abort from the runtime's threads as the process exits under them. Bound
here, it fails at once as a usage error (exit 2) that names the address and what to do.
"""

from __future__ import annotations

import errno
import socket

from modelseal.errors import UsageError

LISTEN_BACKLOG = 2048
"""As uvicorn's default: connections the kernel queues before the server accepts them."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (IPv4 or IPv6, as ``host`` resolves first).

    Raises ``UsageError`` when it cannot: the port is taken or privileged, or ``host`` is
    not an address of this machine.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return socket.create_server((host, port), family=family[0][0], backlog=LISTEN_BACKLOG)
    except socket.gaierror as exc:
        raise UsageError(
            f"--host {host}: not a host name or address this machine resolves ({exc.strerror})"
        ) from None
    except OSError as exc:
        raise UsageError(_bind_failure(address, port, exc)) from None


def _bind_failure(address: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {address}: another process is already listening there; "
            "stop it or choose another --port"
        )
    if error.errno == errno.EACCES:
        return (
            f"cannot listen on {address}: no permission to bind port {port} (ports below 1024 "
            "need privileges); choose another --port"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {address}: not an address of this machine; check --host"
    return f"cannot listen on {address}: {error.strerror or error}"
