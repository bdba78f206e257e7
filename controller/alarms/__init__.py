"""Alarm notification: channels that reach designated people, and one round of dispatch."""
