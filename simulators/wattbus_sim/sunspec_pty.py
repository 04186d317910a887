"""A pseudo-terminal pair wired back to back, like `socat pty,link=A pty,link=B`.

The simulator's RTU server opens one end, the bridge (or any RS485 tool) opens the other
through a symlink, and bytes flow between them as on a two-node RS485 line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tty
from pathlib import Path

from .lifecycle import run


class PtyPair:
    def __init__(self, link: str) -> None:
        self.link = Path(link)
        self._server_master, server_slave = os.openpty()
        self._client_master, client_slave = os.openpty()
        for fd in (server_slave, client_slave, self._server_master, self._client_master):
            tty.setraw(fd)
        self.server_path = os.ttyname(server_slave)
        self.client_path = os.ttyname(client_slave)
        # Keep the slave ends open so the masters do not see EOF between client connections.
        self._slaves = (server_slave, client_slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(self.client_path)

    def _pump(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except OSError:
            return
        if data:
            os.write(dst, data)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self._server_master, self._pump, self._server_master, self._client_master)
        loop.add_reader(self._client_master, self._pump, self._client_master, self._server_master)

    def close(self) -> None:
        loop = asyncio.get_event_loop()
        for fd in (self._server_master, self._client_master):
            loop.remove_reader(fd)
        for fd in (self._server_master, self._client_master, *self._slaves):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim sunspec_pty",
                                     description="link two pseudo-terminals back to back until Ctrl-C")
    parser.add_argument("link_a")
    parser.add_argument("link_b")
    args = parser.parse_args(argv)

    async def link() -> None:
        pair = PtyPair(args.link_b)
        Path(args.link_a).unlink(missing_ok=True)
        Path(args.link_a).symlink_to(pair.server_path)
        pair.start(asyncio.get_running_loop())
        print(f"{args.link_a} <-> {args.link_b}", flush=True)
        try:
            await asyncio.Event().wait()  # until cancelled by a stop signal
        finally:
            pair.close()
            Path(args.link_a).unlink(missing_ok=True)

    run(link())
    return 0
