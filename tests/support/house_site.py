"""`[site]` of the simulated house (wattbus-sim house_bus, source "house-sim") with its garage
loadpoint, as the tests that run the controller on it state it."""

HOUSE_SITE = """
[site]
grid = "house-sim/house-meter"
battery = ["house-sim/house-battery"]
[[site.loadpoints]]
id = "garage"
charger = "house-sim/house-wallbox"
"""
