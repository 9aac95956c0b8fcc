"""Every route, every kind of caller, own / subtree / sibling / foreign objects: the exact status of each.

The objects are seen from the customer administrator's seat: own = customer C1, subtree = its group G1,
sibling = C2 (same reseller), foreign = C3 (another reseller's customer); for ticket and key routes, the
ticket or service key of that organization. A route the app serves without an entry here fails the test.

Bodies too: every `organization_id` anywhere in a successful read, and every item of every list, must lie
within the caller's reach as computed here from the world's tree and memberships, independently of the
authorization service. A list route without an entry in LISTS fails the test.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Mount

from api.app import create_app
from api.portal.routing import PortalRoute
from tessera.activation import recovery
from tessera.activation.models import Activation
from tessera.apikeys import authenticate
from tessera.catalog.schema import SubscriptionTerms
from tessera.cloud import containers
from tessera.cloud.models import CloudContainer, CloudDevice
from tessera.db import create_engine, create_session_factory
from tessera.models import ApiKey, Event, EventKind, Grant, Membership, Order, Product, utcnow
from tessera.reports.models import Report
from tessera.settings import REPO_ROOT, Settings
from tessera.subscriptions.creation import ensure_for_order
from tessera.webhooks import endpoints
from tessera.webhooks.deliveries import prepare_dispatch
from tessera.webhooks.models import WebhookEndpoint
from tests.conftest import (
    TEST_SECRET,
    RightsWorld,
    _truncate_postgres,
    bearer,
    build_rights_world,
)

PRINCIPALS = [
    "vendor_admin",
    "vendor_staff",
    "reseller_admin",
    "reseller_member",
    "customer_admin",
    "customer_member",
    "subgroup_member",
    "sibling_admin",
    "foreign_admin",
]
UNAUTHENTICATED = ["revoked_key", "expired_key", "no_key"]
OBJECTS = ["own", "subtree", "sibling", "foreign"]
ORG_OF = {"own": "C1", "subtree": "G1", "sibling": "C2", "foreign": "C3"}

# Statuses for the objects own, subtree, sibling, foreign; "ok" is the route's success status.
SEES = {  # reading: everything within reach
    "vendor_admin": "ok ok ok ok",
    "vendor_staff": "404 404 404 404",
    "reseller_admin": "ok ok ok 404",
    "reseller_member": "404 404 404 404",
    "customer_admin": "ok ok 404 404",
    "customer_member": "ok 404 404 404",
    "subgroup_member": "404 ok 404 404",
    "sibling_admin": "404 404 ok 404",
    "foreign_admin": "404 404 404 ok",
}
ADMINISTERS = {  # acting: administrators of the node or above; members see their node but may not act
    **SEES,
    "customer_member": "403 404 404 404",
    "subgroup_member": "404 403 404 404",
}
ABOVE = {  # deleting a node or writing its grant: administrators strictly above (or of the delegating grant)
    **ADMINISTERS,
    "customer_admin": "403 ok 404 404",
    "sibling_admin": "404 404 403 404",
    "foreign_admin": "404 404 404 403",
}
NAMES_IN_BODY = {  # a body that names an organization: out of reach is an invalid reference, not a 404
    name: row.replace("404", "422") for name, row in ADMINISTERS.items()
}
ORDERS = {  # ordering names the organization in the body; G1's own grant lacks `create`, so even its admins may not
    **NAMES_IN_BODY,
    "reseller_admin": "ok 403 ok 422",
    "customer_admin": "ok 403 422 422",
}
OWNS_KEY = {  # service keys: visible only to administrators of their organization, so never a 403
    **SEES,
    "customer_member": "404 404 404 404",
    "subgroup_member": "404 404 404 404",
}


SUBSCRIPTION_SEES = {  # a subscription is the contract: its organization's administrators and those above see it
    **SEES,
    "customer_member": "404 404 404 404",
    "subgroup_member": "404 404 404 404",
}
SUBSCRIPTION_CREATE = {  # more seats, ERP terms: `create`, which G1's own grant lacks
    **SUBSCRIPTION_SEES,
    "reseller_admin": "ok 403 ok 404",
    "customer_admin": "ok 403 404 404",
}
SUBSCRIPTION_CANCEL = {  # cancel and revoke: the nearest grant of every customer and group lacks them
    **SUBSCRIPTION_SEES,
    "reseller_admin": "403 403 403 404",
    "customer_admin": "403 403 404 404",
    "sibling_admin": "404 404 403 404",
    "foreign_admin": "404 404 404 403",
}
ERP_TERMS = {  # `create`, and only the vendor's and the reseller's: a customer's admin is not its ERP
    **SUBSCRIPTION_CREATE,
    "customer_admin": "403 403 404 404",
    "sibling_admin": "404 404 403 404",
    "foreign_admin": "404 404 404 403",
}
LICENSE_REVOKE = {  # whoever sees the license; only vendor administrators hold `revoke` on these nodes
    **ADMINISTERS,
    "reseller_admin": "403 403 403 404",
    "customer_admin": "403 403 404 404",
    "sibling_admin": "404 404 403 404",
    "foreign_admin": "404 404 404 403",
}


def everyone(status: int) -> dict[str, str]:
    return dict.fromkeys(PRINCIPALS, str(status))


def vendor_only(status: int) -> dict[str, str]:
    return {**dict.fromkeys(PRINCIPALS, "403"), "vendor_admin": str(status)}


Request = Callable[[RightsWorld, str | None], tuple[str, Any]]


@dataclass(frozen=True)
class Route:
    expected: dict[str, str] | None  # None: public
    ok: int = 200
    request: Request = lambda _world, _obj: ("", None)
    per_object: bool = False
    restore: Callable[[AsyncSession, RightsWorld, str], Any] | None = None
    headers: Callable[[], dict[str, str]] = dict


def org_path(suffix: str = "", body: Any = None) -> Request:
    return lambda world, obj: (f"/api/v1/organizations/{world.orgs[ORG_OF[obj or 'own']]}{suffix}", body)


def member_path(body: Any = None) -> Request:
    def build(world: RightsWorld, obj: str | None) -> tuple[str, Any]:
        org = ORG_OF[obj or "own"]
        return f"/api/v1/organizations/{world.orgs[org]}/members/{world.users['m_' + org]}", body

    return build


def order_path(suffix: str = "", body: Any = None) -> Request:
    return lambda world, obj: (f"/api/v1/orders/{world.orders[obj or 'own']}{suffix}", body)


def license_path() -> Request:
    return lambda world, obj: (f"/api/v1/licenses/{world.licenses[obj or 'own']}", None)


def subscription_path(suffix: str = "", body: Any = None) -> Request:
    return lambda world, obj: (f"/api/v1/subscriptions/{world.subscriptions[obj or 'own']}{suffix}", body)


def license_action(suffix: str) -> Request:
    return lambda world, obj: (f"/api/v1/licenses/{world.licenses[obj or 'own']}{suffix}", None)


def ticket_path(suffix: str = "", body: Any = None) -> Request:
    return lambda world, obj: (f"/api/v1/tickets/{world.tickets[obj or 'own']}{suffix}", body)


GRANT_BODIES = {
    "own": {"permissions": ["allocate", "create"], "quota": 10, "delegable": True},
    "subtree": {"permissions": ["allocate"], "quota": 1, "delegable": False},
    "sibling": {"permissions": ["allocate", "create"], "quota": 5, "delegable": False},
    "foreign": {"permissions": ["allocate", "create"], "quota": None, "delegable": False},
}
DEVICE = {"kind": "software", "fingerprint": "matrix-device"}
ACTIVATION = {"code": "0000-0000-0000-0000-0000-0000-0000", "container": DEVICE}
OFFLINE_REQUEST = {"format": "tessera-offline-request/1", **ACTIVATION, "nonce": "n" * 32, "last_seq": 0}
GROUP = {"code": "CAD", "name": {"en": "CAD"}}
PRODUCT = {"code": "PRO-CAD", "group": "CAD", "name": {"en": "ProCAD"}, "kind": "perpetual"}


async def _restore_grants(session: AsyncSession, world: RightsWorld, _obj: str) -> None:
    await session.execute(update(Grant).where(Grant.id.in_(world.grants.values())).values(withdrawn_at=None))


async def _restore_member(session: AsyncSession, world: RightsWorld, obj: str) -> None:
    org = ORG_OF[obj]
    session.add(Membership(user_id=world.users["m_" + org], organization_id=world.orgs[org], role="member"))


async def _restore_endpoint(session: AsyncSession, world: RightsWorld, obj: str) -> None:
    endpoint_id = world.webhook_endpoints[obj]
    await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(deleted_at=None))


def endpoint_path(suffix: str = "", body: Any = None) -> Request:
    return lambda world, obj: (f"/api/v1/webhook-endpoints/{world.webhook_endpoints[obj or 'own']}{suffix}", body)


async def _restore_key(session: AsyncSession, world: RightsWorld, obj: str) -> None:
    key_id = world.service_keys[ORG_OF[obj]]
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=None))


CLOUD_CONTAINERS: dict[str, uuid.UUID] = {}
"""Object -> the cloud container of its organization (made in `add_cloud`)."""
ACTIVATIONS: dict[str, uuid.UUID] = {}
"""Object -> an activation of its ticket, with a pending recovery."""
MATRIX_DEVICE = "matrix-device"


def container_path(suffix: str = "") -> Request:
    return lambda _world, obj: (f"/api/v1/cloud-containers/{CLOUD_CONTAINERS[obj or 'own']}{suffix}", None)


def activation_path(suffix: str = "") -> Request:
    return lambda _world, obj: (f"/api/v1/activations/{ACTIVATIONS[obj or 'own']}{suffix}", None)


async def _restore_container(session: AsyncSession, _world: RightsWorld, obj: str) -> None:
    container_id = CLOUD_CONTAINERS[obj]
    await session.execute(update(CloudContainer).where(CloudContainer.id == container_id).values(deleted_at=None))
    await _restore_device(session, _world, obj)


async def _restore_device(session: AsyncSession, _world: RightsWorld, obj: str) -> None:
    await session.execute(
        delete(CloudDevice).where(
            CloudDevice.container_id == CLOUD_CONTAINERS[obj], CloudDevice.device_id == MATRIX_DEVICE
        )
    )
    session.add(CloudDevice(container_id=CLOUD_CONTAINERS[obj], device_id=MATRIX_DEVICE))


V1 = "/api/v1"
ROUTES: dict[str, Route] = {
    # Public: no key needed. Temporal is not running for these tests, so health honestly answers 503.
    "GET /healthz": Route(None, 503),
    "GET /openapi.json": Route(None),
    "GET /docs": Route(None),
    "GET /docs/oauth2-redirect": Route(None),
    "GET /redoc": Route(None),
    "GET /docs/static/{name}": Route(None, request=lambda _w, _o: ("/docs/static/swagger-ui-bundle.js", None)),
    # Activation: the ticket code or activation secret is the credential; made-up ones are not found.
    "GET /.well-known/jwks.json": Route(None),
    f"POST {V1}/activations": Route(None, 404, lambda _w, _o: ("", ACTIVATION)),
    f"POST {V1}/activations/offline": Route(None, 404, lambda _w, _o: ("", OFFLINE_REQUEST)),
    f"POST {V1}/activations/{{activation_id}}/refresh": Route(
        None, 404, lambda _w, _o: (f"{V1}/activations/{uuid.uuid4()}/refresh", {"secret": "tsa_made_up"})
    ),
    f"DELETE {V1}/activations/{{activation_id}}": Route(
        None, 404, lambda _w, _o: (f"{V1}/activations/{uuid.uuid4()}", {"secret": "tsa_made_up"})
    ),
    f"GET {V1}/product-groups": Route(everyone(200)),
    f"POST {V1}/product-groups": Route(vendor_only(409), request=lambda _w, _o: ("", GROUP)),
    f"GET {V1}/products": Route(everyone(200)),
    f"POST {V1}/products": Route(vendor_only(409), request=lambda _w, _o: ("", PRODUCT)),
    f"GET {V1}/products/{{code}}": Route(everyone(200), request=lambda _w, _o: (f"{V1}/products/PRO-CAD", None)),
    f"PATCH {V1}/products/{{code}}": Route(
        vendor_only(200), request=lambda _w, _o: (f"{V1}/products/PRO-CAD", {"max_activations": 1})
    ),
    f"GET {V1}/organizations": Route(everyone(200)),
    f"POST {V1}/organizations": Route(
        NAMES_IN_BODY,
        201,
        lambda w, o: ("", {"kind": "group", "parent_id": str(w.orgs[ORG_OF[o or "own"]]), "name": "matrix"}),
        per_object=True,
    ),
    f"GET {V1}/organizations/{{organization_id}}": Route(SEES, 200, org_path(), per_object=True),
    f"PATCH {V1}/organizations/{{organization_id}}": Route(
        ADMINISTERS, 200, org_path(body={"locale": "en"}), per_object=True
    ),
    # Every object holds children or licenses, so permission is proved by 409 and nothing is deleted.
    f"DELETE {V1}/organizations/{{organization_id}}": Route(ABOVE, 409, org_path(), per_object=True),
    f"PUT {V1}/organizations/{{organization_id}}/members/{{user_id}}": Route(
        ADMINISTERS, 200, member_path({"role": "member"}), per_object=True
    ),
    f"DELETE {V1}/organizations/{{organization_id}}/members/{{user_id}}": Route(
        ADMINISTERS, 204, member_path(), per_object=True, restore=_restore_member
    ),
    # Members are listed to administrators of the organization or above; plain members see the node, not them.
    f"GET {V1}/organizations/{{organization_id}}/members": Route(
        ADMINISTERS, 200, org_path("/members"), per_object=True
    ),
    f"GET {V1}/organizations/{{organization_id}}/grants": Route(SEES, 200, org_path("/grants"), per_object=True),
    f"GET {V1}/organizations/{{organization_id}}/grants/{{product_group}}": Route(
        SEES, 200, org_path("/grants/CAD"), per_object=True
    ),
    f"PUT {V1}/organizations/{{organization_id}}/grants/{{product_group}}": Route(
        ABOVE,
        200,
        lambda w, o: (org_path("/grants/CAD")(w, o)[0], GRANT_BODIES[o or "own"]),
        per_object=True,
    ),
    f"DELETE {V1}/organizations/{{organization_id}}/grants/{{product_group}}": Route(
        ABOVE, 204, org_path("/grants/CAD"), per_object=True, restore=_restore_grants
    ),
    f"GET {V1}/users": Route(everyone(200)),
    f"POST {V1}/users": Route(
        NAMES_IN_BODY,
        202,
        lambda w, o: (
            "",
            {"email": f"invitee-{o}@example.com", "name": "I", "organization_id": str(w.orgs[ORG_OF[o or "own"]])},
        ),
        per_object=True,
    ),
    f"GET {V1}/users/me": Route(everyone(200)),
    # The member of each organization: visible to its administrators and to fellow members' admins above.
    f"GET {V1}/users/{{user_id}}": Route(
        OWNS_KEY, 200, lambda w, o: (f"{V1}/users/{w.users['m_' + ORG_OF[o or 'own']]}", None), per_object=True
    ),
    f"GET {V1}/api-keys": Route(everyone(200)),
    # Invitations and sign-in need no key: a made-up token is not found, a wrong password is refused.
    f"POST {V1}/invitations/redeem": Route(
        None, 404, lambda _w, _o: ("", {"token": "x" * 43, "email": "nobody@example.com", "password": "p" * 16})
    ),
    f"POST {V1}/auth/keys": Route(
        None, 401, lambda _w, _o: ("", {"email": "nobody@example.com", "password": "not the password"})
    ),
    f"POST {V1}/api-keys": Route(
        NAMES_IN_BODY,
        201,
        lambda w, o: (
            "",
            {"name": "erp", "scopes": ["tickets:read"], "organization_id": str(w.orgs[ORG_OF[o or "own"]])},
        ),
        per_object=True,
    ),
    f"DELETE {V1}/api-keys/{{api_key_id}}": Route(
        OWNS_KEY,
        204,
        lambda w, o: (f"{V1}/api-keys/{w.service_keys[ORG_OF[o or 'own']]}", None),
        per_object=True,
        restore=_restore_key,
    ),
    f"GET {V1}/tickets": Route(everyone(200)),
    f"POST {V1}/tickets/lookup": Route(SEES, 200, lambda w, o: ("", {"code": w.codes[o or "own"]}), per_object=True),
    f"GET {V1}/tickets/{{ticket_id}}": Route(SEES, 200, ticket_path(), per_object=True),
    f"PATCH {V1}/tickets/{{ticket_id}}": Route(
        ADMINISTERS, 200, ticket_path(body={"visibility": "all_members"}), per_object=True
    ),
    f"POST {V1}/tickets/{{ticket_id}}/code": Route(SEES, 200, ticket_path("/code"), per_object=True),
    # Temporal is not running here: an order that passes every check is stored and answered with 503 (retry).
    f"POST {V1}/orders": Route(
        ORDERS,
        503,
        lambda w, o: ("", {"organization_id": str(w.orgs[ORG_OF[o or "own"]]), "product": "PRO-CAD", "quantity": 1}),
        per_object=True,
        headers=lambda: {"Idempotency-Key": str(uuid.uuid4())},
    ),
    f"GET {V1}/orders": Route(everyone(200)),
    f"GET {V1}/orders/{{order_id}}": Route(SEES, 200, order_path(), per_object=True),
    # The world's orders are fulfilled: whoever sees one gets "not waiting", before Temporal is asked.
    f"POST {V1}/orders/{{order_id}}/approve": Route(SEES, 409, order_path("/approve"), per_object=True),
    f"POST {V1}/orders/{{order_id}}/reject": Route(SEES, 409, order_path("/reject"), per_object=True),
    f"GET {V1}/licenses": Route(everyone(200)),
    f"GET {V1}/licenses/{{license_id}}": Route(SEES, 200, license_path(), per_object=True),
    f"GET {V1}/events": Route(everyone(200)),
    # Reports: vendor administrators all, a reseller's administrators their reseller's (R1), everyone else 404.
    f"GET {V1}/reports/renewals": Route(
        {**everyone(404), "vendor_admin": "200", "reseller_admin": "200"},
        request=lambda _w, _o: (f"{V1}/reports/renewals?from=2026-03-01&to=2026-04-01&format=json", None),
    ),
    f"GET {V1}/reports/active-subscriptions": Route(
        {**everyone(404), "vendor_admin": "200", "reseller_admin": "200"},
        request=lambda _w, _o: (f"{V1}/reports/active-subscriptions?on=2026-03-31&format=json", None),
    ),
    f"GET {V1}/reports": Route(everyone(200)),
    f"GET {V1}/reports/{{report_id}}": Route(
        everyone(404), request=lambda w, _o: (f"{V1}/reports/{w.orgs['V']}", None)
    ),
    # The world's subscriptions are ERP-managed (so no cell changes them): cancelling is refused with a 409 once
    # the rights allow it, a seat "change" to the current quantity is a 200, an ERP date before the term is a
    # 422. Temporal is not running: revocations and decisions that pass every check answer 503.
    f"GET {V1}/subscriptions": Route(everyone(200)),
    f"GET {V1}/subscriptions/{{subscription_id}}": Route(SUBSCRIPTION_SEES, 200, subscription_path(), per_object=True),
    f"PATCH {V1}/subscriptions/{{subscription_id}}": Route(
        SUBSCRIPTION_CREATE, 200, subscription_path(body={"quantity": 1}), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/cancel": Route(
        SUBSCRIPTION_CANCEL, 409, subscription_path("/cancel"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/uncancel": Route(
        SUBSCRIPTION_CANCEL, 409, subscription_path("/uncancel"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/revoke": Route(
        SUBSCRIPTION_CANCEL, 503, subscription_path("/revoke"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/terms": Route(
        ERP_TERMS,
        422,
        subscription_path("/terms", {"valid_through": "2000-01-01", "external_ref": "matrix"}),
        per_object=True,
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/cancellation/approve": Route(
        SUBSCRIPTION_SEES, 409, subscription_path("/cancellation/approve"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/cancellation/reject": Route(
        SUBSCRIPTION_SEES, 409, subscription_path("/cancellation/reject"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/revocation/approve": Route(
        SUBSCRIPTION_SEES, 503, subscription_path("/revocation/approve"), per_object=True
    ),
    f"POST {V1}/subscriptions/{{subscription_id}}/revocation/reject": Route(
        SUBSCRIPTION_SEES, 503, subscription_path("/revocation/reject"), per_object=True
    ),
    f"POST {V1}/licenses/{{license_id}}/revoke": Route(LICENSE_REVOKE, 503, license_action("/revoke"), per_object=True),
    f"POST {V1}/licenses/{{license_id}}/revocation/approve": Route(
        SEES, 503, license_action("/revocation/approve"), per_object=True
    ),
    f"POST {V1}/licenses/{{license_id}}/revocation/reject": Route(
        SEES, 503, license_action("/revocation/reject"), per_object=True
    ),
    "GET /api/v1/event-types": Route(None),
    f"GET {V1}/webhook-endpoints": Route(everyone(200)),
    f"POST {V1}/webhook-endpoints": Route(
        NAMES_IN_BODY,
        201,
        lambda w, o: (
            "",
            {
                "organization_id": str(w.orgs[ORG_OF[o or "own"]]),
                "url": "https://hooks.example.com/matrix",
                "event_types": ["order.fulfilled"],
            },
        ),
        per_object=True,
    ),
    # Endpoints are visible to the administrators of their organization or above only, so never a 403.
    f"GET {V1}/webhook-endpoints/{{endpoint_id}}": Route(OWNS_KEY, 200, endpoint_path(), per_object=True),
    f"PATCH {V1}/webhook-endpoints/{{endpoint_id}}": Route(
        OWNS_KEY, 200, endpoint_path(body={"description": "matrix"}), per_object=True
    ),
    f"DELETE {V1}/webhook-endpoints/{{endpoint_id}}": Route(
        OWNS_KEY, 204, endpoint_path(), per_object=True, restore=_restore_endpoint
    ),
    f"POST {V1}/webhook-endpoints/{{endpoint_id}}/secret": Route(
        OWNS_KEY, 200, endpoint_path("/secret"), per_object=True
    ),
    f"GET {V1}/webhook-endpoints/{{endpoint_id}}/deliveries": Route(
        OWNS_KEY, 200, endpoint_path("/deliveries"), per_object=True
    ),
    # Temporal is not running here: a redelivery that passes every check answers 503 (retry).
    f"POST {V1}/events/{{event_id}}/redeliver": Route(
        OWNS_KEY,
        503,
        lambda w, o: (f"{V1}/events/{w.webhook_events[o or 'own']}/redeliver", None),
        per_object=True,
    ),
    # Cloud containers (one of each organization's own, with a device seated) and lost-device recoveries (one
    # pending for each object's ticket's activation). Temporal is not running: a recovery that passes every
    # check, and every decision on one, answers 503 (retry).
    f"GET {V1}/cloud-containers": Route(everyone(200)),
    f"POST {V1}/cloud-containers": Route(
        NAMES_IN_BODY,
        201,
        lambda w, o: ("", {"organization_id": str(w.orgs[ORG_OF[o or "own"]]), "for_organization": True}),
        per_object=True,
    ),
    f"GET {V1}/cloud-containers/{{container_id}}": Route(OWNS_KEY, 200, container_path(), per_object=True),
    f"DELETE {V1}/cloud-containers/{{container_id}}": Route(
        OWNS_KEY, 204, container_path(), per_object=True, restore=_restore_container
    ),
    f"POST {V1}/cloud-containers/{{container_id}}/credentials": Route(
        OWNS_KEY, 200, container_path("/credentials"), per_object=True
    ),
    f"DELETE {V1}/cloud-containers/{{container_id}}/devices/{{device_id}}": Route(
        OWNS_KEY, 204, container_path(f"/devices/{MATRIX_DEVICE}"), per_object=True, restore=_restore_device
    ),
    # Reached with a credential, never an API key: a made-up one is refused the same for everyone.
    f"POST {V1}/cloud-containers/{{container_id}}/access": Route(
        None,
        401,
        lambda _w, _o: (
            f"{V1}/cloud-containers/{CLOUD_CONTAINERS['own']}/access",
            {"credential": "tcc_made-up", "device_id": "matrix"},
        ),
    ),
    f"POST {V1}/activations/{{activation_id}}/recover": Route(
        ADMINISTERS, 503, activation_path("/recover"), per_object=True
    ),
    f"GET {V1}/activations/{{activation_id}}/recovery": Route(SEES, 200, activation_path("/recovery"), per_object=True),
    f"POST {V1}/activations/{{activation_id}}/recover/approve": Route(
        SEES, 503, activation_path("/recover/approve"), per_object=True
    ),
    f"POST {V1}/activations/{{activation_id}}/recover/reject": Route(
        SEES, 503, activation_path("/recover/reject"), per_object=True
    ),
}


def served_routes(app: FastAPI) -> set[str]:
    """`METHOD path` of every API route the app serves, walking included routers.

    The portal's pages and its static files are left to the portal's own reach test, which compares each page
    with what the API shows the same person.
    """
    found: set[str] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            context = getattr(route, "include_context", None)
            if isinstance(route, Mount | PortalRoute):
                continue
            if context is not None:
                walk(route.original_router.routes, prefix + context.prefix)
            elif hasattr(route, "original_router"):  # pragma: no cover - other FastAPI versions
                walk(route.original_router.routes, prefix)
            else:
                found.update(f"{method} {prefix}{route.path}" for method in route.methods - {"HEAD"})

    walk(list(app.routes), "")
    return found


def test_every_route_is_in_the_matrix() -> None:
    app = create_app(Settings(database_url="sqlite:///unused.db"))
    served = served_routes(app)
    documented = {f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops}
    assert documented <= served, "the route walk missed routes FastAPI documents"
    assert served == set(ROUTES), f"missing: {served - set(ROUTES)}; stale: {set(ROUTES) - served}"


# --- the world, built once per database --------------------------------------------------------------------


@dataclass
class Matrix:
    world: RightsWorld
    client: AsyncClient
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("matrix") / "tessera.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    yield url
    _truncate_postgres(url)


@pytest.fixture(scope="module")
async def matrix(matrix_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    engine = create_engine(matrix_database)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        world = await build_rights_world(session)
        world.subscriptions = await add_subscriptions(session, world)
        await session.commit()
    await add_webhooks(sessions, world)
    await add_cloud(sessions, world)
    settings = Settings(
        database_url=matrix_database,
        var_dir=Path(tmp_path_factory.mktemp("var")),
        config_dir=REPO_ROOT / "config",
        secret_key=TEST_SECRET.decode(),
        temporal_address="127.0.0.1:1",
    )
    app = create_app(settings)
    transport = ASGITransport(app=app)
    async with app.router.lifespan_context(app), AsyncClient(transport=transport, base_url="http://x.test") as client:
        yield Matrix(world=world, client=client, sessions=sessions)
    await engine.dispose()


async def add_subscriptions(session: AsyncSession, world: RightsWorld) -> dict[str, uuid.UUID]:
    """One ERP-managed subscription (no licenses, so the ticket lists stay as they are) for each object."""
    product = Product(
        code="SUB-CAD-ERP",
        group_id=world.group_id,
        name={"en": "ERP-managed CAD subscription"},
        kind="subscription",
        container_kinds=["software"],
        price_amount=Decimal("120.00"),
        price_currency="EUR",
        subscription=SubscriptionTerms(managed_by="erp").model_dump(mode="json"),
    )
    session.add(product)
    await session.flush()
    made = {}
    for obj, org in ORG_OF.items():
        order = Order(
            organization_id=world.orgs[org],
            product_id=product.id,
            quantity=1,
            allocation="organization",
            visibility="all_members",
            status="fulfilled",
            trail=[],
        )
        session.add(order)
        await session.flush()
        made[obj] = (await ensure_for_order(session, order, product, utcnow())).id
    return made


ENDPOINT_ORGS: dict[uuid.UUID, uuid.UUID] = {}
"""Endpoint id -> its organization, for telling whether a delivery is within reach."""


async def add_webhooks(sessions: async_sessionmaker[AsyncSession], world: RightsWorld) -> None:
    """An endpoint and a webhook event (with its delivery row) in each object's organization."""
    async with sessions() as session:
        admin = await authenticate(session, TEST_SECRET, world.keys["vendor_admin"])
        for obj, org_name in ORG_OF.items():
            endpoint, _secret = await endpoints.create_endpoint(
                session,
                admin,
                TEST_SECRET,
                endpoints.UrlRules(),
                organization_id=world.orgs[org_name],
                url=f"https://hooks.example.com/{obj}",
                event_types=["order.fulfilled"],
            )
            world.webhook_endpoints[obj] = endpoint.id
            ENDPOINT_ORGS[endpoint.id] = endpoint.organization_id
            event = Event(
                key=f"matrix-webhook:{obj}",
                kind=EventKind.webhook,
                name="order.fulfilled",
                organization_id=endpoint.organization_id,
            )
            session.add(event)
            await session.flush()
            world.webhook_events[obj] = event.id
            await prepare_dispatch(session, event.id)
        await session.commit()


async def add_cloud(sessions: async_sessionmaker[AsyncSession], world: RightsWorld) -> None:
    """A cloud container of each object's organization with a device seated, and for each object's ticket an
    activation whose recovery is pending."""
    async with sessions() as session:
        admin = await authenticate(session, TEST_SECRET, world.keys["vendor_admin"])
        for obj, org_name in ORG_OF.items():
            container, _file = await containers.create_container(
                session,
                admin,
                TEST_SECRET,
                api_base_url="http://x.test/api/v1",
                organization_id=world.orgs[org_name],
                for_organization=True,
            )
            CLOUD_CONTAINERS[obj] = container.id
            session.add(CloudDevice(container_id=container.id, device_id=MATRIX_DEVICE))
            activation = Activation(
                ticket_id=world.tickets[obj],
                license_id=world.licenses[obj],
                container_kind="software",
                container_id=f"software:matrix-{obj}",
                status="active",
                secret_hash=uuid.uuid4().bytes * 2,
                seq=1,
            )
            session.add(activation)
            await session.flush()
            ACTIVATIONS[obj] = activation.id
            await recovery.request_recovery(session, admin, activation.id)
        await session.commit()


def _cells() -> Iterator[Any]:
    for key, route in ROUTES.items():
        if route.expected is None:
            yield pytest.param(key, "no_key", None, route.ok, id=f"{key}|public")
            continue
        objects: list[str | None] = list(OBJECTS) if route.per_object else [None]
        for principal in PRINCIPALS + UNAUTHENTICATED:
            row = route.expected.get(principal, "").split()
            for index, obj in enumerate(objects):
                if principal in UNAUTHENTICATED:
                    status = 401
                else:
                    cell = row[index] if route.per_object else row[0]
                    status = route.ok if cell == "ok" else int(cell)
                yield pytest.param(key, principal, obj, status, id=f"{key}|{principal}|{obj or '-'}")


@pytest.mark.parametrize(("route_key", "principal", "obj", "status"), list(_cells()))
async def test_cell(matrix: Matrix, route_key: str, principal: str, obj: str | None, status: int) -> None:
    method, template = route_key.split(" ", 1)
    route = ROUTES[route_key]
    path, body = route.request(matrix.world, obj)
    headers = {**route.headers(), **({} if principal == "no_key" else bearer(matrix.world.keys[principal]))}
    response = await matrix.client.request(method, path or template, json=body, headers=headers)
    assert response.status_code == status, response.text
    if status >= 400 and route.expected is not None:
        assert response.headers["content-type"] == "application/problem+json"
    if method == "GET" and status == 200 and principal in PRINCIPALS:
        tree = await Tree.read(matrix.sessions)
        outside = organization_ids(response.json()) - tree.reach(matrix.world.users[principal])
        assert not outside, f"{route_key} shows organizations outside {principal}'s reach: {outside}"
    if route.restore is not None and response.status_code < 300 and obj is not None:
        async with matrix.sessions() as session:
            await route.restore(session, matrix.world, obj)
            await session.commit()


VISIBLE_TICKETS = {
    "vendor_admin": {"own", "subtree", "sibling", "foreign", "own_admins_only", "own_named"},
    "vendor_staff": set(),
    "reseller_admin": {"own", "subtree", "sibling", "own_admins_only", "own_named"},
    "reseller_member": set(),
    "customer_admin": {"own", "subtree", "own_admins_only", "own_named"},
    "customer_member": {"own", "own_named"},
    "subgroup_member": {"subtree"},
    "sibling_admin": {"sibling"},
    "foreign_admin": {"foreign"},
}
MINE = {
    **{principal: set[str]() for principal in PRINCIPALS},
    "customer_admin": {"own"},
    "customer_member": {"own", "own_named"},
    "subgroup_member": {"subtree"},
    "sibling_admin": {"sibling"},
    "foreign_admin": {"foreign"},
}


@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_ticket_lists_hold_exactly_what_the_caller_may_see(matrix: Matrix, principal: str) -> None:
    names = {ticket_id: name for name, ticket_id in matrix.world.tickets.items()}
    auth = bearer(matrix.world.keys[principal])
    for params, expected in (({}, VISIBLE_TICKETS[principal]), ({"mine": "true"}, MINE[principal])):
        page = (await matrix.client.get(f"{V1}/tickets", params=params, headers=auth)).json()
        assert {names[uuid.UUID(item["id"])] for item in page["items"]} == expected, params


# --- bodies: nothing outside the caller's reach ---------------------------------------------------------------


def as_id(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclass(frozen=True)
class Tree:
    """The organization tree and memberships as stored now (cells create nodes and invite users)."""

    parent: dict[uuid.UUID, uuid.UUID | None]
    memberships: list[tuple[uuid.UUID, uuid.UUID, str]]  # user, organization, role

    @staticmethod
    async def read(sessions: async_sessionmaker[AsyncSession]) -> Tree:
        async with sessions() as session:
            orgs = (await session.execute(text("SELECT id, parent_id FROM organization"))).all()
            members = (await session.execute(text("SELECT user_id, organization_id, role FROM membership"))).all()
        return Tree(
            parent={as_id(org): as_id(parent) if parent else None for org, parent in orgs},
            memberships=[(as_id(user), as_id(org), str(role)) for user, org, role in members],
        )

    def subtree(self, root: uuid.UUID) -> set[uuid.UUID]:
        found = {root}
        while True:
            below = {org for org, parent in self.parent.items() if parent in found} - found
            if not below:
                return found
            found |= below

    def administered(self, user: uuid.UUID) -> set[uuid.UUID]:
        roots = [org for who, org, role in self.memberships if who == user and role == "admin"]
        return set().union(*(self.subtree(root) for root in roots))

    def reach(self, user: uuid.UUID) -> set[uuid.UUID]:
        """Organizations a user may see: the subtrees it administers and the nodes it is a member of."""
        return self.administered(user) | {org for who, org, _role in self.memberships if who == user}

    def vendor_admins(self) -> set[uuid.UUID]:
        roots = {org for org, parent in self.parent.items() if parent is None}
        return {who for who, org, role in self.memberships if org in roots and role == "admin"}

    def users_reached(self, user: uuid.UUID) -> set[uuid.UUID]:
        """Users a user may see: itself and the members of every organization it administers."""
        administered = self.administered(user)
        return {user} | {who for who, org, _role in self.memberships if org in administered}


def organization_ids(body: Any) -> set[uuid.UUID]:
    """Every `organization_id` anywhere in a JSON body."""
    found: set[uuid.UUID] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "organization_id" and isinstance(value, str):
                found.add(uuid.UUID(value))
            else:
                found |= organization_ids(value)
    elif isinstance(body, list):
        for value in body:
            found |= organization_ids(value)
    return found


ItemCheck = Callable[[Tree, uuid.UUID, dict[str, Any]], bool]


def item_org_in_reach(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    return uuid.UUID(item["organization_id"]) in tree.reach(user)


def event_in_reach(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    # Messages filed without an organization (invitations) are the vendor administrators' alone.
    if item["organization_id"] is None:
        return user in tree.vendor_admins()
    return item_org_in_reach(tree, user, item)


def own_key(_tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    # Without ?organization_id= the list holds the caller's own keys only.
    return bool(item["user_id"] == str(user))


def organization_in_reach(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    return uuid.UUID(item["id"]) in tree.reach(user)


def user_in_reach(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    return uuid.UUID(item["id"]) in tree.users_reached(user)


def member_in_reach(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    return uuid.UUID(item["user_id"]) in tree.users_reached(user)


def subscription_administered(tree: Tree, user: uuid.UUID, item: dict[str, Any]) -> bool:
    return uuid.UUID(item["organization_id"]) in tree.administered(user)


def catalog(_tree: Tree, _user: uuid.UUID, _item: dict[str, Any]) -> bool:
    return True  # the catalog is the same for everyone


LISTS: dict[str, ItemCheck] = {  # every GET list route: how to tell that an item is within the caller's reach
    f"GET {V1}/product-groups": catalog,
    f"GET {V1}/products": catalog,
    f"GET {V1}/organizations": organization_in_reach,
    f"GET {V1}/users": user_in_reach,
    f"GET {V1}/tickets": item_org_in_reach,
    f"GET {V1}/orders": item_org_in_reach,
    f"GET {V1}/licenses": item_org_in_reach,
    f"GET {V1}/subscriptions": subscription_administered,
    f"GET {V1}/events": event_in_reach,
    f"GET {V1}/reports": lambda tree, user, item: (
        user in tree.vendor_admins() or (item["scope"] != "all" and uuid.UUID(item["scope"]) in tree.administered(user))
    ),
    f"GET {V1}/api-keys": own_key,
    f"GET {V1}/organizations/{{organization_id}}/members": member_in_reach,
    f"GET {V1}/organizations/{{organization_id}}/grants": item_org_in_reach,
    f"GET {V1}/webhook-endpoints": item_org_in_reach,
    f"GET {V1}/cloud-containers": lambda tree, user, item: (
        item["user_id"] == str(user) or uuid.UUID(item["organization_id"]) in tree.administered(user)
    ),
    f"GET {V1}/webhook-endpoints/{{endpoint_id}}/deliveries": lambda tree, user, item: (
        ENDPOINT_ORGS[uuid.UUID(item["endpoint_id"])] in tree.administered(user) or user in tree.vendor_admins()
    ),
}


def test_every_list_route_is_checked_for_reach() -> None:
    app = create_app(Settings(database_url="sqlite:///unused.db"))
    lists = {
        f"GET {path}"
        for path, operations in app.openapi()["paths"].items()
        if "get" in operations and "Page_" in str(operations["get"]["responses"].get("200", {}).get("content", {}))
    }
    assert lists == set(LISTS), f"missing: {lists - set(LISTS)}; stale: {set(LISTS) - lists}"


@pytest.fixture(scope="module")
async def world_events(matrix: Matrix) -> None:
    """One event in each organization, so the outbox list has something to leak."""
    async with matrix.sessions() as session:
        for name, org in matrix.world.orgs.items():
            session.add(
                Event(key=f"matrix:{name}", kind=EventKind.webhook, name="order.fulfilled", organization_id=org)
            )
        # A recorded report of the whole vendor and one of reseller R1, so the report list has something to leak.
        for scope in ("all", str(matrix.world.orgs["R1"])):
            period = {"period": "2026-03", "period_from": date(2026, 3, 1), "period_to": date(2026, 4, 1)}
            session.add(
                Report(kind="renewals", scope=scope, format="csv", file_name=f"m-{scope}.csv", totals=[], **period)
            )
        await session.commit()


@pytest.mark.usefixtures("world_events")
@pytest.mark.parametrize("principal", PRINCIPALS)
async def test_lists_hold_nothing_outside_the_callers_reach(matrix: Matrix, principal: str) -> None:
    auth = bearer(matrix.world.keys[principal])
    tree = await Tree.read(matrix.sessions)
    user = matrix.world.users[principal]
    for route_key, within in LISTS.items():
        template = route_key.split(" ", 1)[1]
        # A list below an organization is asked of every organization: out of reach it must not answer at all.
        paths = [template]
        if "{organization_id}" in template:
            paths = [template.replace("{organization_id}", str(org)) for org in matrix.world.orgs.values()]
        elif "{endpoint_id}" in template:
            ids = matrix.world.webhook_endpoints.values()
            paths = [template.replace("{endpoint_id}", str(endpoint)) for endpoint in ids]
        items = []
        for path in paths:
            response = await matrix.client.get(path, params={"limit": 200}, headers=auth)
            if path != template and response.status_code in (403, 404):
                continue
            assert response.status_code == 200, (path, response.text)
            items += response.json()["items"]
        if principal == "vendor_admin":
            assert items, f"{route_key} is empty even for the vendor admin: the check would prove nothing"
        strays = [item for item in items if not within(tree, user, item)]
        assert not strays, f"{route_key} shows {principal} items outside its reach: {strays}"
        assert organization_ids(items) <= tree.reach(user), route_key
