"""InventoryService: reserves stock for an order and releases it on compensation."""
