"""I/O steps that several operators share, so that no operator is another operator's library: power calls and
their lost answers (:mod:`.power`), pauses and early resumes (:mod:`.pause`), leases held in the cloud
(:mod:`.leases`), temporary resources of a run (:mod:`.temporary`) and health checks (:mod:`.health`).

Layer: below ``operators/`` and ``sensors/``, above ``hooks/``, ``waiting/`` and ``logic/``; nothing here knows
Airflow's operator classes.
"""
