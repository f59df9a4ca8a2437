"""Logger, Tracer and Metrics, created once and shared by every module."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from functions.service_names import NAMESPACE, SERVICE

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
