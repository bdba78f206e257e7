"""Sensor drivers behind one interface (simulated now; serial/Modbus/1-Wire later)."""

from edge_agent.sensors.base import SensorDriver, SensorError

__all__ = ["SensorDriver", "SensorError"]
