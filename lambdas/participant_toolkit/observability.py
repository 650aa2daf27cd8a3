"""Powertools Logger, Tracer and Metrics shared by the toolkit and the handler modules."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# Only boto3 (botocore) calls leave a participant. Patching every library X-Ray knows (the default) imports
# requests, sqlite3 and more at cold start (whatever is installed), and would trace none of our calls.
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()
