"""Demo tenants, one demo user per role in each, and demo patients.

Everything is created only if missing, so seeding an already-seeded stack
changes nothing (`make run` after Ctrl-C, or twice against one endpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.importer import ImportReport, import_folder
from functions.common.authz import Role

TENANTS = ("demo-clinic", "other-clinic")
ROLES = tuple(role.value for role in Role)  # one demo user per role of the authz table
DEMO_PASSWORD = "Demo-Passw0rd-2026!"  # local stack only; documented in the README
DEMO_DIR = Path(__file__).resolve().parent.parent / "demo" / "synthea"
OTHER_CLINIC_BUNDLES = 2  # other-clinic gets the first two demo patients


def username(role: str, tenant: str) -> str:
    return f"{role}@{tenant}.example"


def ensure_users(cognito: Any, pool_id: str) -> list[str]:
    created = []
    for tenant in TENANTS:
        for role in ROLES:
            name = username(role, tenant)
            try:
                cognito.admin_get_user(UserPoolId=pool_id, Username=name)
                continue
            except cognito.exceptions.UserNotFoundException:
                pass
            cognito.admin_create_user(
                UserPoolId=pool_id,
                Username=name,
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": name},
                    {"Name": "custom:tenant", "Value": tenant},
                ],
            )
            cognito.admin_set_user_password(
                UserPoolId=pool_id, Username=name, Password=DEMO_PASSWORD, Permanent=True
            )
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=name, GroupName=role)
            created.append(name)
    return created


def id_token(cognito: Any, pool_id: str, client_id: str, role: str, tenant: str) -> str:
    resp = cognito.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username(role, tenant), "PASSWORD": DEMO_PASSWORD},
    )
    return str(resp["AuthenticationResult"]["IdToken"])


def seed_practitioners() -> dict[str, int]:
    """One Practitioner per demo user, found by `identifier=<USER_SYSTEM>|<username>`."""
    from devstack.importer import existing_id
    from functions.common.caller import system_caller
    from functions.engine import registry, service
    from functions.engine.directory import USER_SYSTEM
    from models.clock import new_id

    decl = registry.require("Practitioner")
    created: dict[str, int] = {}
    for tenant in TENANTS:
        created[tenant] = 0
        for role in ROLES:
            name = username(role, tenant)
            if existing_id(tenant, "Practitioner", f"{USER_SYSTEM}|{name}"):
                continue
            body = {
                "resourceType": "Practitioner",
                "identifier": [{"system": USER_SYSTEM, "value": name}],
                "active": True,
                "name": [{"family": role.replace("_", " ").title(), "given": ["Demo"]}],
            }
            caller = system_caller(tenant, "system:seed", "seed", new_id(), "practitioner.create")
            service.create(caller, decl, body, may_label=False)
            created[tenant] += 1
    return created


def seed_patients() -> dict[str, ImportReport]:
    return {
        "demo-clinic": import_folder(DEMO_DIR, "demo-clinic"),
        "other-clinic": import_folder(DEMO_DIR, "other-clinic", limit=OTHER_CLINIC_BUNDLES),
    }
