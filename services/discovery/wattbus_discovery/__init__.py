"""wattbus discovery: finds SunSpec, APsystems ECU, GivEnergy, go-e and Shelly devices on the LAN."""
