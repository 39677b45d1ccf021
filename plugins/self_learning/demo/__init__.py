"""Apart from what every Airflow component needs: ``make demo`` (``python -m self_learning.demo``,
the runner in ``run``) and the synthetic ad-campaign traffic it and the tests use (``synthetic``).

Imports nothing itself, so ``self_learning.demo.synthetic`` does not load the runner (and Airflow).
"""
