"""Powertools Logger, Tracer and Metrics of the API functions."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
