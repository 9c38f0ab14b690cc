"""Kafka helpers: one producer configuration, record headers, topic creation."""
