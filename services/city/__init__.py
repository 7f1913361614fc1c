"""The city's outside APIs: the location service (zone -> place) and the sensor service
(place, time -> live traffic), with the latency and failures of remote APIs (simulated)."""
