"""Getting signed meter readings in: the MQTT and HTTP intake, and the device simulator.

``contract`` fixes the wire contract between meters and the intake (topic layout, QoS, the HTTP
batch endpoint and its limits); ``engine`` decodes, verifies, validates and stores readings in
batches; ``mqtt`` and ``http`` feed it; ``devices`` reads device records from a ledger data
directory; ``issuer`` turns stored device-days into issuances.
"""
