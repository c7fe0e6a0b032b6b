"""The shop: one module per service, each a ``create_app(ctx) -> FastAPI`` factory.

>>> sorted(SHOP)
['catalog', 'gateway', 'inventory', 'notifications', 'orders', 'payments', 'users']
"""

from __future__ import annotations

from . import catalog, gateway, inventory, notifications, orders, payments, users

SHOP = {
    "users": users.create_app,
    "catalog": catalog.create_app,
    "orders": orders.create_app,
    "inventory": inventory.create_app,
    "payments": payments.create_app,
    "notifications": notifications.create_app,
    "gateway": gateway.create_app,
}

__all__ = ["SHOP"]
