"""Self-learning feedback loop for ad-prediction models: statistics, store and operators.

Statistics modules (``domain``, ``performance``, ``error_analysis``, ``drift``,
``retraining``, ``validation``) are pure: numpy / scipy / scikit-learn / pandas in,
small dataclasses out, no Airflow and no I/O. Import the module you need; this package
``__init__`` stays empty so that importing it is free at DAG-parse time.
"""
