"""The model-health web app mounted by the API server (``app``) and its Prometheus exposition
(``metrics``). Loaded lazily by ``self_learning_plugin`` on the first request only."""
