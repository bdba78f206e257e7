"""GSP evaluation of committed telemetry: compartment state, excursions, alarms."""
