"""generic-bridge: devices the project has no bridge for, mapped onto the contract by a description."""
