"""Create the local stack on a moto server from `infra/template.json`.

The deployable CloudFormation fragment is the one source of truth: this module
reads it, resolves the intrinsics it uses (`Ref`, `Fn::GetAtt`, `Fn::Sub`) to the
local resources, and translates each resource's Properties into the service API
calls. No property value is repeated here; only local *names* are chosen here
(CloudFormation would generate them in a real stack).

Local names: the table, user pool and archive bucket names are arguments; other
names are derived from the logical id with the table name as prefix
(`EmrAuditQueue` -> `emr-local-audit`, `EmrAuditDLQ` -> `emr-local-audit-dlq`,
`EmrAuditRule` -> `emr-local-audit-rule`, `EmrLedgerBucket` -> `emr-local-ledger`,
`EmrEventArchive` -> `emr-local-event-archive`); `AWS::StackName` is that prefix
too (trail `emr-local-trail`); names the template itself gives (bus `emr`, client
`emr-app`, aliases) are used as they are.

Idempotent: a resource that already exists (found by name, or by alias for KMS
keys) is reused as it is (not reconfigured) and nothing is created twice.

Resources of a type in `LOCAL_SKIPPED` are not created locally; resources without
a `Type` are fragments merged into Chalice's own resources (functions, roles) and
are not provisioned either. Any other type, or a property of a handled type that
is not translated, makes `provision` raise before it creates anything, so the
template and this module cannot drift apart silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.json"
LOCAL_REGION = "us-east-1"
LOCAL_ACCESS_KEY = "local"

# Types the template may hold that are deliberately not created locally.
LOCAL_SKIPPED: frozenset[str] = frozenset(
    {
        "AWS::IAM::Role",  # moto does not enforce IAM: function roles matter only in AWS
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::SQS::QueuePolicy",  # resource policies: not enforced by moto
        "AWS::S3::BucketPolicy",
        "AWS::ApiGateway::GatewayResponse",  # the local API is served by Chalice, not API Gateway
    }
)
# Per-tenant alert topics are not in the template: the alerts consumer creates
# "<EMR_ALERTS_TOPIC_PREFIX><tenant>" on first use (encrypted with the messaging key).
ALERTS_TOPIC_PREFIX = "emr-alerts-"

# Logical ids the LocalStack values are read from (the contract of the template).
TABLE, TABLE_KEY, DATA_KEY = "EmrTable", "EmrTableKey", "EmrDataKey"
PSYCHOTHERAPY_KEY = "EmrPsychotherapyKey"  # psychotherapy notes: their own key
USER_POOL, APP_CLIENT = "EmrUserPool", "EmrUserPoolClient"
EVENT_BUS, ARCHIVE_BUCKET = "EmrEventBus", "EmrArchiveBucket"
LEDGER_BUCKET, MESSAGING_KEY, TRAIL = "EmrLedgerBucket", "EmrMessagingKey", "EmrTrail"
# Queue logical ids -> the environment variables naming their URLs (consumers, DLQs).
QUEUE_ENV = {
    "EmrBillingQueue": "EMR_BILLING_QUEUE_URL",
    "EmrAuditQueue": "EMR_AUDIT_QUEUE_URL",
    "EmrAlertsQueue": "EMR_ALERTS_QUEUE_URL",
    "EmrBillingDLQ": "EMR_BILLING_DLQ_URL",
    "EmrAuditDLQ": "EMR_AUDIT_DLQ_URL",
    "EmrAlertsDLQ": "EMR_ALERTS_DLQ_URL",
}


class ProvisionError(RuntimeError):
    """The template holds something this module cannot create locally."""


@dataclass(frozen=True)
class LocalStack:
    endpoint: str
    region: str
    table_name: str
    table_key_id: str
    data_key_id: str
    psychotherapy_key_id: str
    user_pool_id: str
    app_client_id: str
    event_bus_name: str
    queue_urls: dict[str, str]
    archive_bucket: str
    stream_arn: str
    ledger_bucket: str
    messaging_key_id: str
    trail_arn: str
    max_receives: int

    def jwks_url(self) -> str:
        return f"{self.endpoint}/{self.user_pool_id}/.well-known/jwks.json"

    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_ACCESS_KEY,
            "EMR_TABLE_NAME": self.table_name,
            "EMR_DATA_KEY_ID": self.data_key_id,
            "EMR_PSYCHOTHERAPY_KEY_ID": self.psychotherapy_key_id,
            "EMR_USER_POOL_ID": self.user_pool_id,
            "EMR_APP_CLIENT_ID": self.app_client_id,
            "EMR_JWT_ISSUER": self.issuer(),
            "EMR_JWKS_URL": self.jwks_url(),
            "EMR_EVENT_BUS_NAME": self.event_bus_name,
            "EMR_ARCHIVE_BUCKET": self.archive_bucket,
            "EMR_STREAM_ARN": self.stream_arn,
            **{env: self.queue_urls[logical_id] for logical_id, env in QUEUE_ENV.items()},
            "EMR_MAX_RECEIVES": str(self.max_receives),
            "EMR_LEDGER_BUCKET": self.ledger_bucket,
            "EMR_ALERTS_TOPIC_PREFIX": ALERTS_TOPIC_PREFIX,
            "EMR_MESSAGING_KEY_ID": self.messaging_key_id,
        }


@dataclass(frozen=True)
class LocalResource:
    """What `Ref` and `Fn::GetAtt` of one template resource resolve to locally."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalNames:
    """Names CloudFormation would generate; chosen locally from the arguments."""

    prefix: str
    table: str
    user_pool: str
    bucket: str

    def of(self, logical_id: str, drop_suffix: str = "") -> str:
        """`EmrAuditQueue` -> `<prefix>-audit`, `EmrAuditDLQ` -> `<prefix>-audit-dlq`."""
        stem = logical_id.removeprefix("Emr")
        if drop_suffix and stem != drop_suffix:
            stem = stem.removesuffix(drop_suffix)
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", stem)
        return f"{self.prefix}-{words.lower()}"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def check_supported(template: Mapping[str, Any]) -> None:
    """Raise unless every typed resource is handled or explicitly skipped, and every
    property of a handled resource is translated (nothing is dropped silently)."""
    unknown: list[str] = []
    untranslated: list[str] = []
    for logical_id, resource in template["Resources"].items():
        type_ = resource.get("Type")
        if type_ is None or type_ in LOCAL_SKIPPED:
            continue
        if type_ not in HANDLERS:
            unknown.append(f"{logical_id} ({type_})")
            continue
        extra = sorted(set(resource.get("Properties", {})) - HANDLERS[type_].properties)
        untranslated.extend(f"{logical_id}.{name}" for name in extra)
    if unknown:
        raise ProvisionError(
            "resource types neither provisioned locally nor listed in LOCAL_SKIPPED: "
            + ", ".join(unknown)
        )
    if untranslated:
        raise ProvisionError("properties not translated locally: " + ", ".join(untranslated))


def provision(
    endpoint: str,
    *,
    region: str = LOCAL_REGION,
    table_name: str = "emr-local",
    user_pool_name: str = "emr-local",
    bucket_name: str = "emr-local-archive",
    template: Mapping[str, Any] | None = None,
) -> LocalStack:
    """Create (or find) every local resource of the template on `endpoint`."""
    source = template if template is not None else load_template()
    check_supported(source)
    names = LocalNames(
        prefix=table_name, table=table_name, user_pool=user_pool_name, bucket=bucket_name
    )
    provisioner = Provisioner(source, Clients(endpoint, region), names)
    for logical_id in provisioner.provisionable():
        provisioner.ensure(logical_id)
    return provisioner.local_stack(endpoint)


class Clients:
    """boto3 clients of the moto endpoint, created on first use."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self._session = boto3.session.Session(
            aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_ACCESS_KEY,
            region_name=region,
        )
        self._clients: dict[str, Any] = {}

    def __getitem__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    def account_id(self) -> str:
        account: str = self["sts"].get_caller_identity()["Account"]
        return account


class Provisioner:
    """Creates template resources on demand, dependencies first (via intrinsics)."""

    def __init__(self, template: Mapping[str, Any], clients: Clients, names: LocalNames) -> None:
        self.resources: Mapping[str, Any] = template["Resources"]
        self.clients = clients
        self.names = names
        self._done: dict[str, LocalResource] = {}
        self._in_progress: set[str] = set()
        self._pseudo: dict[str, str] = {}

    def provisionable(self) -> Iterator[str]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in HANDLERS:
                yield logical_id

    def ensure(self, logical_id: str) -> LocalResource:
        if logical_id in self._done:
            return self._done[logical_id]
        if logical_id in self._in_progress:
            raise ProvisionError(f"circular reference through {logical_id}")
        resource = self.resources.get(logical_id)
        if resource is None or resource.get("Type") not in HANDLERS:
            raise ProvisionError(f"{logical_id} is referenced but not provisioned locally")
        self._in_progress.add(logical_id)
        for dependency in _depends_on(resource):
            if self.resources.get(dependency, {}).get("Type") not in LOCAL_SKIPPED:
                self.ensure(dependency)  # a skipped one (a bucket policy) exists only in AWS
        properties = self.resolve(resource.get("Properties", {}))
        self._done[logical_id] = HANDLERS[resource["Type"]].create(self, logical_id, properties)
        self._in_progress.discard(logical_id)
        return self._done[logical_id]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _intrinsic(self, name: str, argument: Any) -> str:
        if name == "Ref":
            return self._ref(argument)
        if name == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else argument.split(".", 1)
            )
            return self._get_att(logical_id, attribute)
        if name == "Fn::Sub":
            return self._sub(argument)
        raise ProvisionError(f"intrinsic function {name} is not resolved locally")

    def _ref(self, name: str) -> str:
        if name.startswith("AWS::"):
            return self.pseudo_parameter(name)
        return self.ensure(name).ref

    def _get_att(self, logical_id: str, attribute: str) -> str:
        attrs = self.ensure(logical_id).attrs
        if attribute not in attrs:
            raise ProvisionError(f"{logical_id}.{attribute} is not known locally")
        return attrs[attribute]

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: str(self.resolve(item)) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return values[name]
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def pseudo_parameter(self, name: str) -> str:
        if not self._pseudo:
            self._pseudo = {
                "AWS::Region": self.clients.region,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::AccountId": self.clients.account_id(),
                "AWS::StackName": self.names.prefix,
            }
        if name not in self._pseudo:
            raise ProvisionError(f"pseudo parameter {name} is not resolved locally")
        return self._pseudo[name]

    def alias_names_of(self, key_logical_id: str) -> list[str]:
        return [
            resource["Properties"]["AliasName"]
            for resource in self.resources.values()
            if resource.get("Type") == "AWS::KMS::Alias"
            and resource["Properties"].get("TargetKeyId") == {"Ref": key_logical_id}
        ]

    def local_stack(self, endpoint: str) -> LocalStack:
        table = self.ensure(TABLE)
        queues = {
            logical_id: self.ensure(logical_id).ref
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == "AWS::SQS::Queue"
        }
        return LocalStack(
            endpoint=endpoint,
            region=self.clients.region,
            table_name=table.ref,
            table_key_id=self.ensure(TABLE_KEY).ref,
            data_key_id=self.ensure(DATA_KEY).attrs["Arn"],
            psychotherapy_key_id=self.ensure(PSYCHOTHERAPY_KEY).attrs["Arn"],
            user_pool_id=self.ensure(USER_POOL).ref,
            app_client_id=self.ensure(APP_CLIENT).ref,
            event_bus_name=self.ensure(EVENT_BUS).ref,
            queue_urls=queues,
            archive_bucket=self.ensure(ARCHIVE_BUCKET).ref,
            stream_arn=table.attrs["StreamArn"],
            ledger_bucket=self.ensure(LEDGER_BUCKET).ref,
            messaging_key_id=self.ensure(MESSAGING_KEY).attrs["Arn"],
            trail_arn=self.ensure(TRAIL).attrs["Arn"],
            max_receives=self.max_receives(),
        )

    def max_receives(self) -> int:
        """The receives after which a consumer's queue moves a message to its DLQ
        (`EMR_MAX_RECEIVES`): one value for every queue with a redrive policy."""
        counts = {
            int(resource["Properties"]["RedrivePolicy"]["maxReceiveCount"])
            for resource in self.resources.values()
            if resource.get("Type") == "AWS::SQS::Queue"
            and "RedrivePolicy" in resource.get("Properties", {})
        }
        if len(counts) != 1:
            raise ProvisionError(f"queues redrive after different receive counts: {counts}")
        return counts.pop()


def _depends_on(resource: Mapping[str, Any]) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _pick(properties: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {key: properties[key] for key in keys if key in properties}


# --- KMS -------------------------------------------------------------------------------

_KEY_CREATE = frozenset({"Description", "KeyUsage", "KeySpec", "MultiRegion", "Origin"})
_KEY_PROPS = _KEY_CREATE | {"KeyPolicy", "EnableKeyRotation"}


def _kms_key(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    aliases = p.alias_names_of(logical_id)
    if not aliases:
        raise ProvisionError(f"{logical_id}: a KMS key needs an alias to be found again")
    kms = p.clients["kms"]
    metadata = _find_key(kms, aliases[0])
    if metadata is None:
        kwargs = _pick(props, _KEY_CREATE)
        if "KeyPolicy" in props:
            kwargs["Policy"] = json.dumps(props["KeyPolicy"])
        metadata = kms.create_key(**kwargs)["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
    return LocalResource(metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]})


def _find_key(kms: Any, alias: str) -> dict[str, Any] | None:
    try:
        metadata: dict[str, Any] = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as error:
        if _error_code(error) == "NotFoundException":
            return None
        raise
    return metadata


def _kms_alias(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    kms = p.clients["kms"]
    if _find_key(kms, props["AliasName"]) is None:
        kms.create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    return LocalResource(props["AliasName"])


# --- DynamoDB ----------------------------------------------------------------------------

_TABLE_CREATE = frozenset(
    {
        "AttributeDefinitions",
        "KeySchema",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "BillingMode",
        "ProvisionedThroughput",
        "DeletionProtectionEnabled",
        "TableClass",
        "Tags",
    }
)
_TABLE_PROPS = _TABLE_CREATE | {
    "TableName",
    "StreamSpecification",
    "SSESpecification",
    "PointInTimeRecoverySpecification",
    "TimeToLiveSpecification",
}


def _dynamodb_table(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    dynamodb = p.clients["dynamodb"]
    name = props.get("TableName", p.names.table)
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        table = _create_table(dynamodb, name, props)
    attrs = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attrs["StreamArn"] = table["LatestStreamArn"]
    return LocalResource(name, attrs)


def _create_table(dynamodb: Any, name: str, props: dict[str, Any]) -> dict[str, Any]:
    kwargs = _pick(props, _TABLE_CREATE)
    if "StreamSpecification" in props:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        kwargs["SSESpecification"] = {
            "Enabled": sse["SSEEnabled"],
            **_pick(sse, frozenset({"SSEType", "KMSMasterKeyId"})),
        }
    table: dict[str, Any] = dynamodb.create_table(TableName=name, **kwargs)["TableDescription"]
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    if "PointInTimeRecoverySpecification" in props:
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"],
        )
    if "TimeToLiveSpecification" in props:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
        )
    return table


# --- Cognito -----------------------------------------------------------------------------

_POOL_CREATE = frozenset(
    {
        "Schema",
        "Policies",
        "AdminCreateUserConfig",
        "UsernameConfiguration",
        "UsernameAttributes",
        "AliasAttributes",
        "AutoVerifiedAttributes",
        "MfaConfiguration",
        "AccountRecoverySetting",
        "DeletionProtection",
        "UserPoolTags",
        "VerificationMessageTemplate",
        "EmailConfiguration",
    }
)
_POOL_PROPS = _POOL_CREATE | {"UserPoolName", "EnabledMfas"}


def _user_pool(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    cognito = p.clients["cognito-idp"]
    name = props.get("UserPoolName", p.names.user_pool)
    pool_id = _find_user_pool(cognito, name)
    if pool_id is None:
        pool_id = cognito.create_user_pool(PoolName=name, **_pick(props, _POOL_CREATE))["UserPool"][
            "Id"
        ]
        if "SOFTWARE_TOKEN_MFA" in props.get("EnabledMfas", []):
            cognito.set_user_pool_mfa_config(
                UserPoolId=pool_id,
                SoftwareTokenMfaConfiguration={"Enabled": True},
                MfaConfiguration=props.get("MfaConfiguration", "OPTIONAL"),
            )
    account = p.pseudo_parameter("AWS::AccountId")
    arn = f"arn:aws:cognito-idp:{p.clients.region}:{account}:userpool/{pool_id}"
    return LocalResource(pool_id, {"Arn": arn})


def _find_user_pool(cognito: Any, name: str) -> str | None:
    for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                return str(pool["Id"])
    return None


_CLIENT_CREATE = frozenset(
    {
        "GenerateSecret",
        "RefreshTokenValidity",
        "AccessTokenValidity",
        "IdTokenValidity",
        "TokenValidityUnits",
        "ReadAttributes",
        "WriteAttributes",
        "ExplicitAuthFlows",
        "SupportedIdentityProviders",
        "CallbackURLs",
        "LogoutURLs",
        "DefaultRedirectURI",
        "AllowedOAuthFlows",
        "AllowedOAuthScopes",
        "AllowedOAuthFlowsUserPoolClient",
        "PreventUserExistenceErrors",
        "EnableTokenRevocation",
        "EnablePropagateAdditionalUserContextData",
        "AuthSessionValidity",
    }
)


def _user_pool_client(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    cognito = p.clients["cognito-idp"]
    pool_id = props["UserPoolId"]
    name = props.get("ClientName", p.names.of(logical_id))
    client_id = _find_client(cognito, pool_id, name)
    if client_id is None:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName=name, **_pick(props, _CLIENT_CREATE)
        )["UserPoolClient"]["ClientId"]
    return LocalResource(client_id, {"ClientId": client_id, "Name": name})


def _find_client(cognito: Any, pool_id: str, name: str) -> str | None:
    paginator = cognito.get_paginator("list_user_pool_clients")
    for page in paginator.paginate(UserPoolId=pool_id, MaxResults=60):
        for client in page["UserPoolClients"]:
            if client["ClientName"] == name:
                return str(client["ClientId"])
    return None


_GROUP_PROPS = frozenset({"GroupName", "UserPoolId", "Description", "Precedence", "RoleArn"})


def _user_pool_group(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    cognito = p.clients["cognito-idp"]
    try:
        cognito.get_group(GroupName=props["GroupName"], UserPoolId=props["UserPoolId"])
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        cognito.create_group(**props)
    return LocalResource(props["GroupName"])


# --- EventBridge -------------------------------------------------------------------------


def _event_bus(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    events = p.clients["events"]
    try:
        bus = events.describe_event_bus(Name=props["Name"])
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        events.create_event_bus(**props)
        bus = events.describe_event_bus(Name=props["Name"])
    return LocalResource(bus["Name"], {"Arn": bus["Arn"], "Name": bus["Name"]})


_RULE_PUT = frozenset({"EventBusName", "ScheduleExpression", "State", "Description", "RoleArn"})


def _events_rule(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    events = p.clients["events"]
    name = props.get("Name", p.names.of(logical_id))
    bus = props.get("EventBusName", "default")
    try:
        arn = events.describe_rule(Name=name, EventBusName=bus)["Arn"]
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        arn = _put_rule(events, name, props)
    return LocalResource(name if bus == "default" else f"{bus}|{name}", {"Arn": arn})


def _put_rule(events: Any, name: str, props: dict[str, Any]) -> str:
    kwargs = _pick(props, _RULE_PUT)
    pattern = props.get("EventPattern")
    if pattern is not None:
        kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    arn: str = events.put_rule(Name=name, **kwargs)["RuleArn"]
    if props.get("Targets"):
        events.put_targets(
            Rule=name, EventBusName=props.get("EventBusName", "default"), Targets=props["Targets"]
        )
    return arn


_ARCHIVE_PROPS = frozenset(
    {"ArchiveName", "SourceArn", "Description", "EventPattern", "RetentionDays"}
)


def _events_archive(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    events = p.clients["events"]
    name = props.get("ArchiveName", p.names.of(logical_id))
    try:
        arn = events.describe_archive(ArchiveName=name)["ArchiveArn"]
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        kwargs = _pick(props, frozenset({"Description", "RetentionDays"}))
        if "EventPattern" in props:
            pattern = props["EventPattern"]
            kwargs["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        kwargs["EventSourceArn"] = props["SourceArn"]
        arn = events.create_archive(ArchiveName=name, **kwargs)["ArchiveArn"]
    return LocalResource(name, {"Arn": arn, "ArchiveName": name})


# --- SQS ---------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES = frozenset(
    {
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
    }
)


def _sqs_queue(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    sqs = p.clients["sqs"]
    name = props.get("QueueName", p.names.of(logical_id, drop_suffix="Queue"))
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if _error_code(error) not in {
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        }:
            raise
        attributes = {
            key: _attribute(value) for key, value in _pick(props, _QUEUE_ATTRIBUTES).items()
        }
        tags = {tag["Key"]: tag["Value"] for tag in props.get("Tags", [])}
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return LocalResource(url, {"Arn": arn["QueueArn"], "QueueName": name, "QueueUrl": url})


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


# --- S3 ----------------------------------------------------------------------------------

_BUCKET_PROPS = frozenset(
    {
        "BucketName",
        "BucketEncryption",
        "VersioningConfiguration",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "ObjectLockEnabled",
        "ObjectLockConfiguration",
    }
)


def _s3_bucket(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    s3 = p.clients["s3"]
    default = p.names.bucket if logical_id == ARCHIVE_BUCKET else p.names.of(logical_id, "Bucket")
    name = props.get("BucketName", default)
    if not _bucket_exists(s3, name):
        _create_bucket(s3, name, p.clients.region, bool(props.get("ObjectLockEnabled")))
        _configure_bucket(s3, name, props)
    return LocalResource(name, {"Arn": f"arn:aws:s3:::{name}"})


def _bucket_exists(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if _error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise
    return True


def _create_bucket(s3: Any, name: str, region: str, object_lock: bool = False) -> None:
    kwargs: dict[str, Any] = {"ObjectLockEnabledForBucket": True} if object_lock else {}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(Bucket=name, **kwargs)


_BUCKET_CONFIG: dict[str, Callable[[Any, str, Any], None]] = {
    "BucketEncryption": lambda s3, name, value: s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **_pick(rule, frozenset({"BucketKeyEnabled"})),
                }
                for rule in value["ServerSideEncryptionConfiguration"]
            ]
        },
    ),
    "VersioningConfiguration": lambda s3, name, value: s3.put_bucket_versioning(
        Bucket=name, VersioningConfiguration=value
    ),
    "PublicAccessBlockConfiguration": lambda s3, name, value: s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration=value
    ),
    "OwnershipControls": lambda s3, name, value: s3.put_bucket_ownership_controls(
        Bucket=name, OwnershipControls=value
    ),
    # ObjectLockEnabled is applied when the bucket is created (it cannot be added later)
    "ObjectLockConfiguration": lambda s3, name, value: s3.put_object_lock_configuration(
        Bucket=name, ObjectLockConfiguration=value
    ),
}


# --- CloudTrail --------------------------------------------------------------------------

# CloudFormation property -> CreateTrail parameter.
_TRAIL_CREATE = {
    "S3BucketName": "S3BucketName",
    "S3KeyPrefix": "S3KeyPrefix",
    "KMSKeyId": "KmsKeyId",
    "EnableLogFileValidation": "EnableLogFileValidation",
    "IsMultiRegionTrail": "IsMultiRegionTrail",
    "IncludeGlobalServiceEvents": "IncludeGlobalServiceEvents",
}
_TRAIL_PROPS = frozenset(_TRAIL_CREATE) | {
    "TrailName",
    "IsLogging",
    "AdvancedEventSelectors",
    "EventSelectors",
}


def _cloudtrail_trail(p: Provisioner, logical_id: str, props: dict[str, Any]) -> LocalResource:
    cloudtrail = p.clients["cloudtrail"]
    name = props.get("TrailName", p.names.of(logical_id))
    try:
        arn = cloudtrail.get_trail(Name=name)["Trail"]["TrailARN"]
    except ClientError as error:
        if _error_code(error) != "TrailNotFoundException":
            raise
        kwargs = {api: props[key] for key, api in _TRAIL_CREATE.items() if key in props}
        arn = cloudtrail.create_trail(Name=name, **kwargs)["TrailARN"]
        selectors = _pick(props, frozenset({"AdvancedEventSelectors", "EventSelectors"}))
        if selectors:
            cloudtrail.put_event_selectors(TrailName=name, **selectors)
        if props.get("IsLogging"):
            cloudtrail.start_logging(Name=name)
    return LocalResource(name, {"Arn": arn})


def _configure_bucket(s3: Any, name: str, props: dict[str, Any]) -> None:
    for key, apply in _BUCKET_CONFIG.items():
        if key in props:
            apply(s3, name, props[key])


@dataclass(frozen=True)
class Translation:
    """How one resource type is created locally, and the properties it translates."""

    create: Callable[[Provisioner, str, dict[str, Any]], LocalResource]
    properties: frozenset[str]


HANDLERS: dict[str, Translation] = {
    "AWS::KMS::Key": Translation(_kms_key, _KEY_PROPS),
    "AWS::KMS::Alias": Translation(_kms_alias, frozenset({"AliasName", "TargetKeyId"})),
    "AWS::DynamoDB::Table": Translation(_dynamodb_table, _TABLE_PROPS),
    "AWS::Cognito::UserPool": Translation(_user_pool, _POOL_PROPS),
    "AWS::Cognito::UserPoolClient": Translation(
        _user_pool_client, _CLIENT_CREATE | {"UserPoolId", "ClientName"}
    ),
    "AWS::Cognito::UserPoolGroup": Translation(_user_pool_group, _GROUP_PROPS),
    "AWS::Events::EventBus": Translation(_event_bus, frozenset({"Name", "Description", "Tags"})),
    "AWS::Events::Rule": Translation(_events_rule, _RULE_PUT | {"Name", "EventPattern", "Targets"}),
    "AWS::SQS::Queue": Translation(_sqs_queue, _QUEUE_ATTRIBUTES | {"QueueName", "Tags"}),
    "AWS::Events::Archive": Translation(_events_archive, _ARCHIVE_PROPS),
    "AWS::S3::Bucket": Translation(_s3_bucket, _BUCKET_PROPS),
    "AWS::CloudTrail::Trail": Translation(_cloudtrail_trail, _TRAIL_PROPS),
}
