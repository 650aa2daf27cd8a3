"""The participant services: one package per service that owns saga steps (InventoryService -> inventory/).

Each package's handlers.py holds one Lambda entry point per command (services.inventory.handlers.reserve_items),
over the domain code beside it; packages import their own modules relatively, so a service works wherever it sits.
"""
