"""The dashboards page of the local stack: the Grafana dashboards the chart ships
(monitoring/dashboards/*.json), drawn with uPlot from the local Prometheus.

Grafana cannot be installed on the laptop; this service reads the same JSON files, runs each
panel's PromQL as a range query against Prometheus (the browser asks this service, never
Prometheus) and draws the answers: ``/`` lists the dashboards, ``/d/<uid or file stem>`` shows
one. Run by ``modelfleet up`` as the component ``dashboards``.
"""
