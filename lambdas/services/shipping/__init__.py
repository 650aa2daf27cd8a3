"""ShippingService: books a shipment for an order and cancels it on compensation."""
