"""Fronius Solar API v1: a Datamanager or GEN24 and the inverters, meter and battery behind it."""
