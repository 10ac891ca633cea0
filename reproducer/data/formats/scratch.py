"""A throwaway local valkey-server, for loading an RDB file or writing one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import valkey

from reproducer.data.endpoint import Endpoint, parse_endpoint
from reproducer.errors import DataError
from reproducer.procs import free_port, stop_pid, wait_until


class ScratchServer:
    """A private valkey-server on loopback, optionally loading ``rdb`` at start; removed on exit."""

    def __init__(self, rdb: Path | None = None) -> None:
        if shutil.which("valkey-server") is None:
            raise DataError("valkey-server is needed for RDB files", hint="install valkey-server (make setup)")
        self.directory = Path(tempfile.mkdtemp(prefix="reproducer-scratch-"))
        if rdb is not None:
            shutil.copyfile(rdb, self.directory / "dump.rdb")
        self.port = free_port()
        argv = [
            "valkey-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "",
            "--appendonly",
            "no",
            "--databases",
            "128",
            "--protected-mode",
            "no",
        ]
        log = (self.directory / "server.log").open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_until(self._ready, timeout=120, what="the scratch valkey-server to load")
        except Exception:
            self.close()
            raise

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            tail = (self.directory / "server.log").read_text(errors="replace").splitlines()[-3:]
            raise DataError(
                f"valkey-server could not load the file: {' | '.join(tail)}",
                hint="is it an RDB file this Valkey version reads (RDB 11 or older)?",
            )
        with valkey.Valkey(port=self.port, socket_timeout=2) as client:
            return bool(client.ping())

    @property
    def endpoint(self) -> Endpoint:
        """The server as an endpoint."""
        return parse_endpoint(f"valkey://127.0.0.1:{self.port}", environ={})

    def save_to(self, path: Path) -> None:
        """SAVE and move the RDB file to ``path``."""
        with valkey.Valkey(port=self.port, socket_timeout=600) as client:
            client.save()
        shutil.copyfile(self.directory / "dump.rdb", path)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        stop_pid(self._proc.pid)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ScratchServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
