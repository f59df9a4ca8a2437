"""The control-plane stack: one construct per concern."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.table import ControlPlaneTable


class ControlPlaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.table = ControlPlaneTable(self, "State").table
        CfnOutput(self, "TableName", value=self.table.table_name)
