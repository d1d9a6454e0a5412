"""Run `pixelforge ARGS...` in its own process without paying the imports every time: the `cli` fixture's engine.

Why: a command's process spends ~4-6 s of CPU importing torch, timm, torchvision (and TorchDynamo behind it) before
it does anything, and the suite runs ~50 commands: a sixth of its time on 2 cores. The zygote process imports them
once; each command then runs in a child forked from it, which is a real process of its own: its own exit status,
its own file descriptors 0-2 (stdin /dev/null, stdout and stderr to files), working directory and environment,
atexit handlers run, and a timeout kills it, as `subprocess.run` does. What differs from a fresh interpreter: the
modules below are already imported. So a test that checks what a command imports, or a path taken only while torch
is not yet imported (the decoding helper, data/prefetch.py), starts its own interpreter instead (`cli(..., fresh=True)`).

Protocol (one JSON line each way): the client sends {"args", "cwd", "env", "stdout", "stderr"}; the zygote answers
{"pid"} once the child is forked and {"status"} (the `returncode`, negative for a signal) when it has exited.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve() -> None:
    """The zygote: import, then fork one child per request line on stdin until stdin closes."""
    import gc

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import timm  # noqa: F401 - torch, torchvision and Dynamo come with it
    import torch  # noqa: F401

    from pixelforge.cli import main as cli_main
    from pixelforge.engine.fabric import lightning_fabric

    lightning_fabric()
    gc.collect()
    gc.freeze()  # the imported modules stay shared with the children instead of being copied by their collector
    channel = sys.stdout
    channel.write(json.dumps({"ready": os.getpid()}) + "\n")
    channel.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, cli_main)  # never returns
        channel.write(json.dumps({"pid": pid}) + "\n")
        channel.flush()
        _, status = os.waitpid(pid, 0)
        channel.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        channel.flush()


def _child(request: dict, cli_main) -> None:
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, so a timeout also stops what it started (DDP workers)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = ["pixelforge", *request["args"]]
        try:
            cli_main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except BaseException:  # what an uncaught exception does to a fresh interpreter
            traceback.print_exc()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


class Zygote:
    """The client side, used by the `cli` fixture: one zygote per test process, started on the first command."""

    def __init__(self, scratch: Path):
        self.scratch, self.process, self.calls, self.pending = scratch, None, 0, b""
        self.last_pid = None  # the latest command's process (and process group) id

    def run(self, args: list[str], timeout: float | None, cwd: str | None) -> subprocess.CompletedProcess:
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.calls += 1
        out, err = self.scratch / f"{self.calls}.out", self.scratch / f"{self.calls}.err"
        request = {"args": args, "cwd": str(cwd or os.getcwd()), "env": dict(os.environ), "stdout": str(out),
                   "stderr": str(err)}
        self._send(request)
        pid = self.last_pid = self._read(60)["pid"]
        answer = self._read(timeout)
        if answer is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the timeout and the kill (a loaded machine): still late
                pass
            self._read(60)
            raise subprocess.TimeoutExpired(args, timeout)
        return subprocess.CompletedProcess(args, answer["status"], out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def _start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.cli_zygote"], cwd=ROOT, bufsize=0,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pending = b""
        if self._read(300) is None:
            raise RuntimeError("the CLI zygote did not start within 300 s")

    def _send(self, request: dict) -> None:
        self.process.stdin.write((json.dumps(request) + "\n").encode())

    def _read(self, timeout: float | None) -> dict | None:
        """The next answer line, or None after `timeout` seconds (None: no limit; unbuffered, so select sees every
        byte)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            with selectors.DefaultSelector() as selector:
                selector.register(self.process.stdout, selectors.EVENT_READ)
                if not selector.select(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the CLI zygote exited")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)


if __name__ == "__main__":
    serve()
