"""Logger and Metrics, created once and shared by every module.

No Powertools Tracer: it loads the X-Ray SDK and patches botocore at cold
start (about a third of a handler's import). The functions keep Lambda's
active tracing, which records each invocation's segment without any SDK.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from functions.service_names import NAMESPACE, SERVICE

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
