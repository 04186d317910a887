"""wattbus common library: the bus contract, bus client, config and service runner."""

__version__ = "0.1.0"
