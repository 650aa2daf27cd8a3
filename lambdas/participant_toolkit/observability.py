"""Powertools Logger, Tracer and Metrics shared by the toolkit and the handler modules."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
