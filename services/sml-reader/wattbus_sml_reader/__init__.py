"""sml-reader: smart meters on optical IR heads and serial lines (SML, DSMR P1, IEC 62056-21)."""
