"""Measurement AI (DESIGN.md section 4): an anomaly model that compares each device-day with the
device's own history and its neighbours, and conservative (lower-quantile) gap estimates.

Modules, one purpose each:

``series``     readings of a window of days laid out as per-device, per-day, per-interval arrays,
               with each device's neighbours (same source and area) and physical bounds.
``features``   interval features computed from those arrays (pure numpy).
``model``      the anomaly classifier: training, scoring, saving with a version and the record of
               the data it was trained on.
``check``      the model as a named step of the validation pipeline (``anomaly_model``).
``estimate``   lower-quantile estimates of missing or rejected intervals' self-consumed energy.
``review``     screened days, flags and estimates kept beside the readings store.
``screened``   a device-day's quantification with measured and estimated energy kept apart.
``gate``       issuance's screening: each pending device-day scored, flagged readings held for
               the authority's release on the ledger (``ReleaseReading``).
``evaluation`` held-out evaluation per fault kind; ``command`` the ``reco2 mrv`` commands.
"""
