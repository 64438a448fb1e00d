"""The test project's one app: orders, shipped by a task through the ORM."""
