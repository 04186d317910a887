"""goe-shelly-bridge: go-e chargers and Shelly relays and meters over their local HTTP APIs."""
