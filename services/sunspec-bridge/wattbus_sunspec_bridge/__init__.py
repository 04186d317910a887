"""sunspec-bridge: SunSpec inverters, meters and batteries (Modbus TCP/RTU) and Eastron SDM meters."""
