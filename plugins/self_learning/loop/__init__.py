"""The loop's lifecycle and reporting, without Airflow: train and judge candidates, run and conclude
A/B tests, assemble learning reports and render them as HTML.

Imports the statistics and the store, never Airflow, so serving code and scripts can run the loop's
functions; the operators call them from tasks.
"""
