"""Brokers the security tests need beyond the shared fixture: the embedded demo's (anonymous
read-only) and one with the TLS listener from mosquitto/tls.conf.example, on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from wattbus.embedded import write_broker

from tests.support.servers import ROOT, TEST_ADMIN, free_port, require, wait_port


class Broker:
    """A Mosquitto written by wattbus.embedded.write_broker, optionally with a TLS listener."""

    def __init__(self, run_dir: Path, *, anonymous: bool, tls_dir: Path | None = None) -> None:
        self.binary = require("mosquitto", "mosquitto")
        self.port = free_port()
        self.files = write_broker(ROOT, run_dir, self.port, anonymous=anonymous, extra_users=(TEST_ADMIN,),
                                  extra_acl=f"\nuser {TEST_ADMIN}\ntopic readwrite #\n", persistence=False)
        self.tls_port: int | None = None
        if tls_dir is not None:
            self.tls_port = free_port()
            # The listener block of mosquitto/tls.conf.example, with test paths and a loopback bind.
            example = (ROOT / "mosquitto" / "tls.conf.example").read_text()
            block = example.replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
            block = block.replace("/mosquitto/certs", str(tls_dir))
            with self.files.conf.open("a") as conf:
                conf.write("\n" + block + "\n")
        self.log = run_dir / "mosquitto.log"
        self.subscribe_log: Path | None = None  # set by flood_rig.subscribing_broker
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.files.conf)], stdout=log, stderr=log)
        wait_port(self.port)
        if self.tls_port:
            wait_port(self.tls_port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def make_certs(directory: Path, name: str = "ca") -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 (ca.crt, server.crt, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=wattbus test {name}",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.crt")
    return directory / "ca.crt"
