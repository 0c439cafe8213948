"""Fault tests: real servers and processes stopped, killed, starved or flooded mid-traffic."""
