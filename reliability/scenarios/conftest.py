"""The real-server fixtures of tests/conftest.py, for the scenarios that live outside tests/."""

from tests.conftest import broker, private_broker, start_service

__all__ = ["broker", "private_broker", "start_service"]
