"""The embedded platform: a real broker, a real Redis and every service, as processes."""
