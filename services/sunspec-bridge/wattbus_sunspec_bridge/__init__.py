"""sunspec-bridge: SunSpec inverters, meters and batteries (Modbus TCP/RTU) and Eastron SDM meters."""

# No wattbus.lean.keep_openssl_out here: pymodbus imports ssl unconditionally, so this bridge always
# loads OpenSSL.
