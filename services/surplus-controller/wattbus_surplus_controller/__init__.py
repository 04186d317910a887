"""surplus-controller: PV-surplus EV charging and surplus loads, talking only through the bus."""
