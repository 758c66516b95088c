"""HTTP routes of the exchange domain."""

from __future__ import annotations

from timebank.exchange.controllers.counter import MyExchangeController, OrderController, RedemptionController
from timebank.exchange.controllers.shops import (
    ShopCatalogueController,
    ShopCounterController,
    ShopStatementController,
)

CONTROLLERS = [
    ShopCatalogueController,
    ShopCounterController,
    ShopStatementController,
    RedemptionController,
    OrderController,
    MyExchangeController,
]
