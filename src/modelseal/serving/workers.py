"""``modelseal serve --workers N``: N server processes on one port, one pod's worth of them.

The parent checks the seal once (``runner.preflight``: source, digests, device), binds the
port, and forks the workers. Each worker loads the model and runs the start-up verification
itself (load, environment diff, golden replay, warm-up), then serves on the listening
socket it inherited: the kernel hands each new connection to one of them, and a worker
that stops listening leaves its share to the others. (One shared socket, not
``SO_REUSEPORT``: with that, connections queued on a worker's own socket are reset when it
dies or drains.)

Readiness is the pod's: a probe answers ready only when every worker is, whichever worker
the kernel hands it to. Each worker writes its own readiness into one byte of a small
memory page the parent maps before forking (shared with every worker, never copied), and
reads its siblings' bytes when asked.

SIGTERM (or SIGINT) to the parent is forwarded to every worker, each drains as the drain
contract says (``runner``), and the parent exits 0 once every worker has. The parent holds
the listening socket only to restart workers, and closes it at once on a signal: the
socket stops listening when the last worker has taken its queued connections.

A worker that dies after it had turned ready (a crash, an OOM kill) is restarted; its byte
says "restarting" meanwhile, so the pod is not ready until the new worker has verified
itself. A worker that exits before it ever turned ready (``--drift exit``, or a crash while
loading) is not restarted, as it would fail again: the parent stops the other workers and
exits with its status.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import signal
import socket
from types import FrameType

from modelseal.errors import SealError
from modelseal.seal.artifact import Seal
from modelseal.serving.config import ServeConfig
from modelseal.serving.device import DeviceChoice
from modelseal.serving.listener import bind_listener
from modelseal.serving.logs import get_logger

log = get_logger("workers")
STARTING, READY, NOT_READY, RESTARTING = 0, 1, 2, 3
_STATE_NAMES = {STARTING: "starting", NOT_READY: "not ready", RESTARTING: "restarting"}
_PR_SET_PDEATHSIG = 1


class ReadinessBoard:
    """One byte of readiness per worker, and one that says whether it was ever ready, in
    an anonymous shared mapping: written by each worker, read by all and by the parent."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._memory = mmap.mmap(-1, 2 * workers)

    def reset(self, index: int, state: int) -> None:
        self._memory[index] = state
        self._memory[self.workers + index] = 0

    def was_ready(self, index: int) -> bool:
        return bool(self._memory[self.workers + index])

    def worker(self, index: int) -> WorkerPeers:
        return WorkerPeers(self, index)

    def publish(self, index: int, ready: bool) -> None:
        self._memory[index] = READY if ready else NOT_READY
        if ready:
            self._memory[self.workers + index] = 1

    def readiness(self) -> tuple[bool, str]:
        for index in range(self.workers):
            state = self._memory[index]
            if state != READY:
                name = _STATE_NAMES.get(state, "not ready")
                return False, f"worker {index + 1} of {self.workers} is {name}"
        return True, f"all {self.workers} workers are ready"


class WorkerPeers:
    """What one worker's model repository sees of the pod (``repository.Peers``)."""

    def __init__(self, board: ReadinessBoard, index: int) -> None:
        self.board = board
        self.index = index

    def publish(self, ready: bool) -> None:
        self.board.publish(self.index, ready)

    def readiness(self) -> tuple[bool, str]:
        return self.board.readiness()


def serve_workers(seal: Seal, device: DeviceChoice, config: ServeConfig) -> int:
    """Run ``config.workers`` workers until a signal has drained them; the exit status."""
    listener = bind_listener(config.host, config.port)
    board = ReadinessBoard(config.workers)
    supervisor = Supervisor(board, listener, seal, device, config)
    return supervisor.run()


class Supervisor:
    def __init__(
        self,
        board: ReadinessBoard,
        listener: socket.socket,
        seal: Seal,
        device: DeviceChoice,
        config: ServeConfig,
    ) -> None:
        self.board = board
        self.listener: socket.socket | None = listener
        self.seal = seal
        self.device = device
        self.config = config
        self.children: dict[int, int] = {}
        """pid -> worker index."""
        self.stopping = False
        self.status = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for index in range(self.board.workers):
            self.board.reset(index, STARTING)
            self._start(index)
        log.info("started %d workers", self.board.workers, extra={"pids": list(self.children)})
        while self.children:
            pid, wait_status = os.waitpid(-1, 0)  # a signal runs _forward, then waits on
            if pid in self.children:
                self._ended(self.children.pop(pid), pid, os.waitstatus_to_exitcode(wait_status))
        return self.status

    def _start(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os._exit(self._worker(index, parent))
        self.children[pid] = index

    def _worker(self, index: int, parent: int) -> int:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's _forward
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            _die_with(parent)
            from modelseal.serving.runner import run_server

            assert self.listener is not None
            run_server(self.seal, self.device, self.config, self.board.worker(index),
                       self.listener)  # fmt: skip
            return 0
        except SealError:
            return 1  # the start-up failure (--drift exit), logged where it happened
        except BaseException:
            log.exception("worker %d failed", index + 1)
            return 1
        finally:
            logging.shutdown()

    def _ended(self, index: int, pid: int, code: int) -> None:
        fields = {"worker": index + 1, "pid": pid, "exit_code": code}
        if self.stopping:
            log.info("worker %d exited", index + 1, extra=fields)
            self.status = self.status or (0 if code == 0 else 1)
            return
        if self.board.was_ready(index) and self.listener is not None:
            log.error("worker %d died after it was ready: restarting it", index + 1, extra=fields)
            self.board.reset(index, RESTARTING)
            self._start(index)
            return
        log.error("worker %d exited before it turned ready: stopping", index + 1, extra=fields)
        self.status = code if code > 0 else 1
        self._stop(signal.SIGTERM)

    def _forward(self, sig: int, _frame: FrameType | None) -> None:
        log.info("signal %s: forwarding it to the workers", signal.Signals(sig).name)
        self._stop(sig)

    def _stop(self, sig: int) -> None:
        self.stopping = True
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _die_with(parent: int) -> None:
    """A worker gets SIGTERM (and drains) when the parent dies, even by SIGKILL; in its own
    process group, so that a terminal's Ctrl-C reaches the parent only, which forwards it
    once (a second signal makes a worker exit at once)."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
