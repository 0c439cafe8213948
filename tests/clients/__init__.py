"""The official SDKs through a real `chatgate serve`, endpoint by endpoint."""
