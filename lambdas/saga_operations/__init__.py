"""Saga operations: the stuck-saga detector and the execution-status reconciler, also used by the operator CLI."""
