"""The API front door of the sagas: start a saga idempotently, read its status, list sagas by status."""
