"""giv-bridge: GivEnergy inverters and batteries through the dongle on TCP 8899 (GivTCP compatible)."""
