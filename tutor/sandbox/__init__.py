"""Running a teaching server without a screen: the sandbox, serve mode and the dashboard's model."""
