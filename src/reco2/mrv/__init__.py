"""MRV (measurement, reporting, verification): from signed meter readings to issuance batches.

Pure functions and records only: no network, no database, no clock. ``readings`` decodes and
verifies signed readings, ``physics`` bounds what a generator can produce, ``validation`` runs
the named checks of DESIGN.md section 4, and ``quantify`` builds an issuance with the Merkle root
of the readings it came from.
"""
